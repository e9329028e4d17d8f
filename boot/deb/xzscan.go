package deb

// A walk over the framing of an xz file, done before decompressing it. The
// xz decoder allocates each block's LZMA2 dictionary at the size its header
// asks for, up to 4 GiB, so a 64-byte file can make kitrun reserve 4 GiB.
// The framing (block headers, LZMA2 chunk headers, index, footer) can be
// followed without decoding anything, and it is exactly what the decoder
// will read, since the decoder reads the same bytes in the same order.
// The walk refuses dictionaries over a limit (maxWindowBytes) and adds up the chunk
// sizes, so a decompression bomb is refused before it is opened.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

// xzCheckSizes is the size of a block's check for each check type of the
// xz format; the decoder supports none (0), CRC32 (1), CRC64 (4) and
// SHA-256 (10).
var xzCheckSizes = map[byte]int64{0: 0, 1: 4, 4: 8, 10: 32}

type xzScanner struct {
	r       *bufio.Reader
	pos     int64 // bytes read since the current stream began, for alignment
	maxDict int64
}

// scanXZ walks the xz data in r and returns how many bytes they decompress
// to, stopping with an error at the first block whose dictionary is larger
// than maxDict or once the total passes maxData.
func scanXZ(r io.Reader, maxData, maxDict int64) (int64, error) {
	s := &xzScanner{r: bufio.NewReaderSize(r, 64<<10), maxDict: maxDict}
	var total int64
	for streams := 0; ; streams++ {
		if streams > 0 {
			// Streams may be followed by padding: zero bytes in fours.
			more, err := s.padding()
			if err != nil || !more {
				return total, err
			}
		}
		n, err := s.stream(maxData - total)
		total += n
		if err != nil {
			return total, fmt.Errorf("xz stream %d: %w", streams+1, err)
		}
	}
}

// padding skips stream padding and says whether another stream follows.
func (s *xzScanner) padding() (bool, error) {
	for {
		b, err := s.r.Peek(4)
		if len(b) == 0 && errors.Is(err, io.EOF) {
			return false, nil
		}
		if len(b) < 4 {
			return false, fmt.Errorf("xz: %d stray bytes at the end", len(b))
		}
		if !bytes.Equal(b, []byte{0, 0, 0, 0}) {
			return true, nil
		}
		s.r.Discard(4)
	}
}

func (s *xzScanner) stream(maxData int64) (int64, error) {
	s.pos = 0
	var h [12]byte
	if err := s.full(h[:]); err != nil {
		return 0, err
	}
	if !bytes.Equal(h[:6], xzMagic) {
		return 0, errors.New("not xz data (no xz magic)")
	}
	checkSize, ok := xzCheckSizes[h[7]]
	if h[6] != 0 || !ok {
		return 0, fmt.Errorf("unsupported stream flags %#02x %#02x", h[6], h[7])
	}
	var total int64
	for blocks := 1; ; blocks++ {
		b, err := s.byte()
		if err != nil {
			return total, err
		}
		if b == 0 { // the index indicator: no more blocks
			return total, s.tail()
		}
		n, err := s.block(b, maxData-total)
		total += n
		if err != nil {
			return total, fmt.Errorf("block %d: %w", blocks, err)
		}
		if err := s.align(); err != nil {
			return total, err
		}
		if err := s.skip(checkSize); err != nil {
			return total, err
		}
	}
}

// block reads a block header whose first byte is b, then the block's LZMA2
// chunks, and returns their decompressed size.
func (s *xzScanner) block(b byte, maxData int64) (int64, error) {
	hdr := make([]byte, (int(b)+1)*4-1)
	if err := s.full(hdr); err != nil {
		return 0, err
	}
	flags := hdr[0]
	if flags&0x3c != 0 {
		return 0, fmt.Errorf("reserved block flags %#02x set", flags)
	}
	p := bytes.NewReader(hdr[1:])
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // compressed, uncompressed size
		if present {
			if _, err := varint(p); err != nil {
				return 0, err
			}
		}
	}
	for range int(flags&3) + 1 {
		id, err := varint(p)
		if err != nil {
			return 0, err
		}
		size, err := varint(p)
		if err != nil {
			return 0, err
		}
		if id != 0x21 || size != 1 {
			return 0, fmt.Errorf("filter %#x is not supported; kitrun reads xz data compressed with LZMA2 alone, as dpkg-deb writes it", id)
		}
		prop, err := p.ReadByte()
		if err != nil {
			return 0, err
		}
		dict, err := lzma2Dict(prop)
		if err != nil {
			return 0, err
		}
		if dict > s.maxDict {
			return 0, fmt.Errorf("LZMA2 dictionary of %d MiB is larger than kitrun's limit of %d MiB (xz -9 uses 64 MiB)", dict>>20, s.maxDict>>20)
		}
	}
	// LZMA2 chunks: a control byte, sizes, data; control 0 ends them.
	var total int64
	for {
		c, err := s.byte()
		if err != nil {
			return total, err
		}
		var unpacked, packed int64
		switch {
		case c == 0:
			return total, nil
		case c == 1 || c == 2: // stored chunk
			n, err := s.be16()
			if err != nil {
				return total, err
			}
			unpacked, packed = n+1, n+1
		case c >= 0x80: // LZMA chunk
			u, err := s.be16()
			if err != nil {
				return total, err
			}
			pk, err := s.be16()
			if err != nil {
				return total, err
			}
			unpacked, packed = int64(c&0x1f)<<16+u+1, pk+1
			if c >= 0xc0 { // new properties byte
				if _, err := s.byte(); err != nil {
					return total, err
				}
			}
		default:
			return total, fmt.Errorf("invalid LZMA2 chunk control byte %#02x", c)
		}
		if total += unpacked; total > maxData {
			return total, errTooBig
		}
		if err := s.skip(packed); err != nil {
			return total, err
		}
	}
}

var errTooBig = errors.New("decompresses to more than the limit")

// tail reads the index (after its indicator) and the stream footer.
func (s *xzScanner) tail() error {
	n, err := s.varint()
	if err != nil {
		return err
	}
	for i := uint64(0); i < 2*n; i++ { // unpadded and uncompressed size of each block
		if _, err := s.varint(); err != nil {
			return err
		}
	}
	if err := s.align(); err != nil {
		return err
	}
	var crcAndFooter [4 + 12]byte
	if err := s.full(crcAndFooter[:]); err != nil {
		return err
	}
	if string(crcAndFooter[14:]) != "YZ" {
		return errors.New("no stream footer after the index")
	}
	return nil
}

// lzma2Dict decodes the dictionary size property of an LZMA2 filter.
func lzma2Dict(p byte) (int64, error) {
	if p > 40 {
		return 0, fmt.Errorf("invalid LZMA2 dictionary size property %d", p)
	}
	if p == 40 {
		return 1<<32 - 1, nil
	}
	return int64(2|p&1) << (p/2 + 11), nil
}

func (s *xzScanner) byte() (byte, error) {
	b, err := s.r.ReadByte()
	if err == nil {
		s.pos++
	}
	return b, unexpected(err)
}

func (s *xzScanner) full(b []byte) error {
	n, err := io.ReadFull(s.r, b)
	s.pos += int64(n)
	return unexpected(err)
}

func (s *xzScanner) skip(n int64) error {
	for n > 0 {
		k, err := s.r.Discard(int(min(n, 1<<20)))
		s.pos += int64(k)
		n -= int64(k)
		if err != nil {
			return unexpected(err)
		}
	}
	return nil
}

func (s *xzScanner) be16() (int64, error) {
	var b [2]byte
	err := s.full(b[:])
	return int64(b[0])<<8 | int64(b[1]), err
}

// align skips the zero padding to the next multiple of four.
func (s *xzScanner) align() error { return s.skip((4 - s.pos%4) % 4) }

func (s *xzScanner) varint() (uint64, error) { return varint(s) }

func (s *xzScanner) ReadByte() (byte, error) { return s.byte() }

// varint reads the xz format's variable-length integer: 7 bits a byte,
// least significant first, at most 9 bytes.
func varint(r io.ByteReader) (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, unexpected(err)
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("xz: integer longer than 9 bytes")
}

// unexpected turns EOF inside a structure into a truncation error.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("xz data end early: %w", io.ErrUnexpectedEOF)
	}
	return err
}
