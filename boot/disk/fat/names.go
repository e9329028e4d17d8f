package fat

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
)

// shortChars are the characters a short (8.3) name may hold besides A-Z
// and 0-9 (Microsoft's FAT specification, "Directory Entry" name rules).
const shortChars = "$%'-_@~`!(){}^#&"

func validShortChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(shortChars, c) >= 0
}

// checkName rejects names no FAT directory can hold as a long name.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("empty or dot path component %q", name)
	}
	if strings.TrimRight(name, ". ") != name {
		return fmt.Errorf("name %q ends with a dot or space, which FAT drops", name)
	}
	for _, r := range name {
		if r < 0x20 || strings.ContainsRune(`"*/:<>?\|`, r) || r == 0x7f {
			return fmt.Errorf("name %q holds %q, which FAT does not allow (no control characters nor any of \"*/:<>?\\|)", name, r)
		}
	}
	if n := len(utf16.Encode([]rune(name))); n > 255 {
		return fmt.Errorf("name %q is %d UTF-16 units long; FAT allows 255", name, n)
	}
	return nil
}

// exactShort returns the 8.3 form of name if upper-casing it is all the
// conversion it needs (then no numeric tail is needed either).
func exactShort(name string) ([11]byte, bool) {
	var s [11]byte
	for i := range s {
		s[i] = ' '
	}
	up := strings.ToUpper(name)
	base, ext, hasExt := strings.Cut(up, ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || (hasExt && ext == "") || strings.Contains(ext, ".") {
		return s, false
	}
	for i := 0; i < len(up); i++ {
		if up[i] != '.' && !validShortChar(up[i]) {
			return s, false
		}
	}
	copy(s[:8], base)
	copy(s[8:], ext)
	return s, true
}

// basis makes the lossy short-name basis of a long name: upper-cased,
// invalid characters as '_', at most 6 base characters (room for "~N")
// and 3 of extension (the last dot's).
func basis(name string) (base, ext string) {
	clean := func(s string, max int) string {
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			if b.Len() == max {
				break
			}
			switch {
			case r == ' ' || r == '.':
			case r < 0x80 && validShortChar(byte(r)):
				b.WriteRune(r)
			default:
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	trimmed := strings.TrimLeft(name, ". ")
	if i := strings.LastIndexByte(trimmed, '.'); i > 0 {
		base, ext = clean(trimmed[:i], 6), clean(trimmed[i+1:], 3)
	} else {
		base = clean(trimmed, 6)
	}
	if base == "" {
		base = "_"
	}
	return base, ext
}

// shortName picks the short name of a directory entry: the name itself
// when it is a valid 8.3 name once upper-cased, else a basis with the
// first free numeric tail ("LONGNA~1.TXT"). taken holds the short names
// already used in the directory. needLFN says whether the long name must
// be stored too.
func shortName(name string, taken map[[11]byte]bool) (s [11]byte, needLFN bool, err error) {
	if s, ok := exactShort(name); ok && !taken[s] {
		return s, s != exactUpper(name), nil
	}
	base, ext := basis(name)
	for n := 1; n < 1000000; n++ {
		tail := "~" + strconv.Itoa(n)
		b := base
		if len(b)+len(tail) > 8 {
			b = b[:8-len(tail)]
		}
		for i := range s {
			s[i] = ' '
		}
		copy(s[:8], b+tail)
		copy(s[8:], ext)
		if !taken[s] {
			return s, true, nil
		}
	}
	return s, false, fmt.Errorf("no free short name for %q", name)
}

// exactUpper is the 8.3 form name would have if it were already upper
// case; shortName compares it to tell a case-only difference (which needs
// the long name to keep the case) from an exact 8.3 name.
func exactUpper(name string) [11]byte {
	var s [11]byte
	for i := range s {
		s[i] = ' '
	}
	base, ext, _ := strings.Cut(name, ".")
	copy(s[:8], base)
	copy(s[8:], ext)
	return s
}

// checksum is the short-name checksum long-name entries carry.
func checksum(s [11]byte) byte {
	var sum byte
	for _, c := range s {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

// lfnEntries encodes name as long-name directory entries, in on-disk order
// (last part first), for the short name s.
func lfnEntries(name string, s [11]byte) []byte {
	u := utf16.Encode([]rune(name))
	n := (len(u) + 12) / 13
	if len(u)%13 != 0 {
		u = append(u, 0)
		for len(u)%13 != 0 {
			u = append(u, 0xffff)
		}
	}
	sum := checksum(s)
	out := make([]byte, 0, n*dirEntrySize)
	// Character slots of an entry: 5 at 1, 6 at 14, 2 at 28.
	slots := [13]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}
	for i := n; i >= 1; i-- {
		e := make([]byte, dirEntrySize)
		e[0] = byte(i)
		if i == n {
			e[0] |= 0x40
		}
		e[11] = attrLongName
		e[13] = sum
		for k, off := range slots {
			c := u[(i-1)*13+k]
			e[off], e[off+1] = byte(c), byte(c>>8)
		}
		out = append(out, e...)
	}
	return out
}
