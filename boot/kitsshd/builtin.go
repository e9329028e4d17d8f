package kitsshd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Built-in commands need no program in the image: the host's test harness
// uses them to look at a guest that may hold nothing but its own services.
// They are recognised by their first word (after Split) and take priority
// over programs of the same name.
const (
	// CmdStat (kitrun-stat PATH) prints one JSON FileInfo and exits 0, also
	// when PATH does not exist (Exists false).
	CmdStat = "kitrun-stat"
	// CmdPing (kitrun-ping) prints "pong".
	CmdPing = "kitrun-ping"
)

// MaxContent is the largest regular file whose content kitrun-stat returns.
const MaxContent = 1 << 20

// FileInfo is kitrun-stat's answer. It does not follow a final symlink.
type FileInfo struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	// Type is "file", "dir", "symlink" or "other" (devices, sockets, fifos).
	Type string `json:"type,omitempty"`
	// Mode is the permission bits in octal, setuid/setgid/sticky included
	// ("0644", "1777").
	Mode string `json:"mode,omitempty"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	Size int64  `json:"size"`
	// MTime is the modification time in the guest's clock (Unix
	// nanoseconds).
	MTime int64 `json:"mtime,omitempty"`
	// SHA256 is the content's digest, for regular files.
	SHA256 string `json:"sha256,omitempty"`
	// Target is a symlink's target.
	Target string `json:"target,omitempty"`
	// Content is a regular file's content when it is at most MaxContent
	// bytes (base64 in JSON).
	Content []byte `json:"content_base64,omitempty"`
}

type builtin func(stdout, stderr io.Writer, args []string) int

var builtins = map[string]builtin{
	CmdStat: statCmd,
	CmdPing: func(stdout, _ io.Writer, _ []string) int {
		fmt.Fprintln(stdout, "pong")
		return 0
	},
}

func statCmd(stdout, stderr io.Writer, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: kitrun-stat PATH")
		return 2
	}
	fi, err := Stat(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "kitrun-stat: %v\n", err)
		return 1
	}
	b, _ := json.Marshal(fi)
	stdout.Write(append(b, '\n'))
	return 0
}

// Stat describes path. A missing path is not an error: Exists is false.
func Stat(path string) (FileInfo, error) {
	fi := FileInfo{Path: path}
	st, err := os.Lstat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return fi, nil
		}
		return fi, err
	}
	fi.Exists = true
	fi.Mode = fmt.Sprintf("%04o", unixPerm(st.Mode()))
	fi.Size = st.Size()
	fi.MTime = st.ModTime().UnixNano()
	fi.UID, fi.GID = owner(st)
	switch {
	case st.Mode().IsRegular():
		fi.Type = "file"
		if err := readContent(path, &fi); err != nil {
			return fi, err
		}
	case st.IsDir():
		fi.Type = "dir"
	case st.Mode()&fs.ModeSymlink != 0:
		fi.Type = "symlink"
		if fi.Target, err = os.Readlink(path); err != nil {
			return fi, err
		}
	default:
		fi.Type = "other"
	}
	return fi, nil
}

func readContent(path string, fi *FileInfo) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if fi.Size <= MaxContent {
		data, err := io.ReadAll(io.LimitReader(f, MaxContent+1))
		if err != nil {
			return err
		}
		h.Write(data)
		if len(data) <= MaxContent {
			fi.Content = data
		} else if _, err := io.Copy(h, f); err != nil { // grew meanwhile
			return err
		}
	} else if _, err := io.Copy(h, f); err != nil {
		return err
	}
	fi.SHA256 = hex.EncodeToString(h.Sum(nil))
	return nil
}

// unixPerm is the st_mode permission bits of m.
func unixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}
