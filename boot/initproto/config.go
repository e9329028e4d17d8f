package initproto

import (
	"encoding/base64"
	"errors"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// ParseConfig reads a Config as the assembler writes it (json.Marshal),
// without encoding/json (see wire.go). It accepts the JSON that
// json.Unmarshal accepts for Config with the names spelled as Config's
// tags (in any ASCII case); unknown members are skipped, null leaves a
// field as it was.
func ParseConfig(data []byte) (*Config, error) {
	d := &decoder{s: data}
	var c Config
	err := d.object(func(key string) error {
		switch foldKey(key) {
		case "hostname":
			return d.str(&c.Hostname)
		case "modules":
			return d.strings(&c.Modules)
		case "available":
			if d.null() {
				return nil
			}
			if c.Available == nil {
				c.Available = map[string]Module{}
			}
			return d.object(func(name string) error {
				m := c.Available[name]
				err := d.object(func(key string) error {
					switch foldKey(key) {
					case "path":
						return d.str(&m.Path)
					case "depends":
						return d.strings(&m.Depends)
					}
					return d.skip()
				})
				c.Available[name] = m
				return err
			})
		case "late_modules":
			return d.strings(&c.LateModules)
		case "network":
			if d.null() {
				return nil
			}
			if c.Network == nil {
				c.Network = &Network{}
			}
			return d.object(func(key string) error {
				switch foldKey(key) {
				case "mode":
					return d.str(&c.Network.Mode)
				case "address":
					return d.str(&c.Network.Address)
				case "gateway":
					return d.str(&c.Network.Gateway)
				case "dns":
					return d.str(&c.Network.DNS)
				}
				return d.skip()
			})
		case "onboot":
			return d.tasks(&c.Onboot)
		case "onshutdown":
			return d.tasks(&c.Onshutdown)
		case "services":
			if d.null() {
				c.Services = nil
				return nil
			}
			c.Services = []Service{}
			return d.array(func() error {
				var s Service
				err := d.object(func(key string) error {
					switch foldKey(key) {
					case "name":
						return d.str(&s.Name)
					case "exec":
						return d.exec(&s.Exec)
					case "restart":
						return d.object(func(key string) error {
							switch foldKey(key) {
							case "policy":
								return d.str(&s.Restart.Policy)
							case "backoff":
								return d.duration(&s.Restart.Backoff)
							case "max_backoff":
								return d.duration(&s.Restart.MaxBackoff)
							case "max_restarts":
								return d.int(&s.Restart.MaxRestarts)
							}
							return d.skip()
						})
					case "ready":
						if d.null() {
							return nil
						}
						if s.Ready == nil {
							s.Ready = &Ready{}
						}
						r := s.Ready
						return d.object(func(key string) error {
							switch foldKey(key) {
							case "tcp":
								return d.str(&r.TCP)
							case "unix":
								return d.str(&r.Unix)
							case "file":
								return d.str(&r.File)
							case "exec":
								return d.strings(&r.Exec)
							case "log":
								return d.str(&r.Log)
							case "timeout":
								return d.duration(&r.Timeout)
							case "interval":
								return d.duration(&r.Interval)
							}
							return d.skip()
						})
					}
					return d.skip()
				})
				c.Services = append(c.Services, s)
				return err
			})
		}
		return d.skip()
	})
	if err == nil {
		err = d.end("the configuration")
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// parseReseed reads a Reseed as Reseed.Command writes it (json.Marshal),
// with the same rules as ParseConfig.
func parseReseed(data []byte) (Reseed, error) {
	d := &decoder{s: data}
	var r Reseed
	err := d.object(func(key string) error {
		switch foldKey(key) {
		case "time":
			return d.int64(&r.UnixNano)
		case "entropy":
			return d.bytes(&r.Entropy)
		case "files":
			return d.bytes(&r.Files)
		}
		return d.skip()
	})
	if err == nil {
		err = d.end("the reseed")
	}
	return r, err
}

// decoder is a small JSON reader: each method reads one value at the
// current position, after white space.
type decoder struct {
	s []byte
	i int
}

func (d *decoder) errorf(what string) error {
	return errors.New(what + " at offset " + strconv.Itoa(d.i))
}

func (d *decoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, 0 at the end.
func (d *decoder) peek() byte {
	d.ws()
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

// null consumes a null and says whether there was one.
func (d *decoder) null() bool {
	if d.peek() == 'n' && d.i+4 <= len(d.s) && string(d.s[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

func (d *decoder) expect(c byte) error {
	if d.peek() != c {
		return d.errorf("expected " + strconv.QuoteRune(rune(c)))
	}
	d.i++
	return nil
}

// object calls member for each member, with the decoder at its value,
// which member must consume.
func (d *decoder) object(member func(key string) error) error {
	if d.null() {
		return nil
	}
	if err := d.expect('{'); err != nil {
		return err
	}
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		var key string
		if err := d.str(&key); err != nil {
			return err
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		if err := member(key); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.errorf("expected ',' or '}'")
		}
	}
}

// array calls elem for each element, which elem must consume.
func (d *decoder) array(elem func() error) error {
	if d.null() {
		return nil
	}
	if err := d.expect('['); err != nil {
		return err
	}
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return d.errorf("expected ',' or ']'")
		}
	}
}

func (d *decoder) strings(out *[]string) error {
	if d.null() {
		*out = nil
		return nil
	}
	*out = []string{}
	return d.array(func() error {
		var s string
		err := d.str(&s)
		*out = append(*out, s)
		return err
	})
}

func (d *decoder) str(out *string) error {
	if d.null() {
		return nil
	}
	if err := d.expect('"'); err != nil {
		return err
	}
	var b []byte
	start := d.i
	for {
		if d.i >= len(d.s) {
			return d.errorf("unterminated string")
		}
		c := d.s[d.i]
		switch {
		case c == '"':
			if b == nil {
				*out = string(d.s[start:d.i])
			} else {
				*out = string(append(b, d.s[start:d.i]...))
			}
			d.i++
			return nil
		case c < 0x20:
			return d.errorf("control character in a string")
		case c == '\\':
			b = append(b, d.s[start:d.i]...)
			d.i++
			if d.i >= len(d.s) {
				return d.errorf("unterminated string")
			}
			e := d.s[d.i]
			d.i++
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return d.errorf("bad \\u escape")
				}
				if utf16.IsSurrogate(r) {
					r2 := utf8.RuneError
					if d.i+1 < len(d.s) && d.s[d.i] == '\\' && d.s[d.i+1] == 'u' {
						save := d.i
						d.i += 2
						if lo, ok := d.hex4(); ok {
							if dec := utf16.DecodeRune(r, lo); dec != utf8.RuneError {
								r2 = dec
							} else {
								d.i = save
							}
						} else {
							d.i = save
						}
					}
					r = r2
				}
				b = utf8.AppendRune(b, r)
			default:
				return d.errorf("bad escape")
			}
			start = d.i
		case c < utf8.RuneSelf:
			d.i++
		default:
			r, size := utf8.DecodeRune(d.s[d.i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, d.s[start:d.i]...)
				b = utf8.AppendRune(b, utf8.RuneError)
				d.i++
				start = d.i
				continue
			}
			d.i += size
		}
	}
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.s) {
		return 0, false
	}
	var r rune
	for _, c := range d.s[d.i : d.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// number returns the text of a JSON number.
func (d *decoder) number() (string, error) {
	d.ws()
	start := d.i
	for d.i < len(d.s) {
		c := d.s[d.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			d.i++
			continue
		}
		break
	}
	if start == d.i {
		return "", d.errorf("expected a number")
	}
	return string(d.s[start:d.i]), nil
}

// end checks that nothing but white space follows the value just read.
func (d *decoder) end(what string) error {
	d.ws()
	if d.i != len(d.s) {
		return d.errorf("data after " + what)
	}
	return nil
}

func (d *decoder) int(out *int) error {
	var v int64
	if err := d.intBits(&v, strconv.IntSize); err != nil {
		return err
	}
	*out = int(v)
	return nil
}

func (d *decoder) int64(out *int64) error {
	return d.intBits(out, 64)
}

// intBits reads an integer that fits in bits; null leaves out as it was.
func (d *decoder) intBits(out *int64, bits int) error {
	if d.null() {
		return nil
	}
	n, err := d.number()
	if err != nil {
		return err
	}
	v, err := strconv.ParseInt(n, 10, bits)
	if err != nil {
		return d.errorf("bad integer " + strconv.Quote(n))
	}
	*out = v
	return nil
}

// bytes reads a []byte as encoding/json writes it: a string in standard,
// padded base64. null makes it nil.
func (d *decoder) bytes(out *[]byte) error {
	if d.null() {
		*out = nil
		return nil
	}
	var s string
	if err := d.str(&s); err != nil {
		return err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return d.errorf("bad base64 (" + err.Error() + ")")
	}
	*out = b
	return nil
}

func (d *decoder) uint32(out *uint32) error {
	if d.null() {
		return nil
	}
	n, err := d.number()
	if err != nil {
		return err
	}
	v, err := strconv.ParseUint(n, 10, 32)
	if err != nil {
		return d.errorf("bad unsigned integer " + strconv.Quote(n))
	}
	*out = uint32(v)
	return nil
}

func (d *decoder) duration(out *Duration) error {
	if d.null() {
		return nil
	}
	var s string
	if err := d.str(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New(err.Error() + " at offset " + strconv.Itoa(d.i))
	}
	*out = Duration(v)
	return nil
}

func (d *decoder) exec(e *Exec) error {
	return d.object(func(key string) error {
		switch foldKey(key) {
		case "path":
			return d.str(&e.Path)
		case "args":
			return d.strings(&e.Args)
		case "env":
			if d.null() {
				e.Env = nil
				return nil
			}
			if e.Env == nil {
				e.Env = map[string]string{}
			}
			return d.object(func(k string) error {
				var v string
				err := d.str(&v)
				e.Env[k] = v
				return err
			})
		case "dir":
			return d.str(&e.Dir)
		case "uid":
			return d.uint32(&e.UID)
		case "gid":
			return d.uint32(&e.GID)
		case "sandbox":
			if d.null() {
				return nil
			}
			e.Sandbox = &Sandbox{}
			return d.sandbox(e.Sandbox)
		}
		return d.skip()
	})
}

func (d *decoder) sandbox(s *Sandbox) error {
	return d.object(func(key string) error {
		switch foldKey(key) {
		case "root":
			return d.str(&s.Root)
		case "caps":
			if d.null() {
				s.Caps = nil
				return nil
			}
			s.Caps = []int{}
			return d.array(func() error {
				var c int
				err := d.int(&c)
				s.Caps = append(s.Caps, c)
				return err
			})
		case "readonly":
			return d.bool(&s.Readonly)
		case "binds":
			if d.null() {
				s.Binds = nil
				return nil
			}
			return d.array(func() error {
				var b Bind
				err := d.object(func(key string) error {
					switch foldKey(key) {
					case "source":
						return d.str(&b.Source)
					case "target":
						return d.str(&b.Target)
					case "writable":
						return d.bool(&b.Writable)
					}
					return d.skip()
				})
				s.Binds = append(s.Binds, b)
				return err
			})
		case "new_net":
			return d.bool(&s.NewNet)
		case "unconfined":
			return d.bool(&s.Unconfined)
		case "memory_max":
			var v int
			err := d.int(&v)
			s.MemoryMax = int64(v)
			return err
		case "cpu_max":
			return d.int(&s.CPUMax)
		}
		return d.skip()
	})
}

func (d *decoder) bool(out *bool) error {
	switch {
	case d.null():
		return nil
	case d.peek() == 't' && d.i+4 <= len(d.s) && string(d.s[d.i:d.i+4]) == "true":
		d.i += 4
		*out = true
		return nil
	case d.peek() == 'f' && d.i+5 <= len(d.s) && string(d.s[d.i:d.i+5]) == "false":
		d.i += 5
		*out = false
		return nil
	}
	return d.errorf("expected true or false")
}

func (d *decoder) tasks(out *[]Task) error {
	if d.null() {
		*out = nil
		return nil
	}
	*out = []Task{}
	return d.array(func() error {
		var t Task
		err := d.object(func(key string) error {
			switch foldKey(key) {
			case "name":
				return d.str(&t.Name)
			case "exec":
				return d.exec(&t.Exec)
			case "timeout":
				return d.duration(&t.Timeout)
			}
			return d.skip()
		})
		*out = append(*out, t)
		return err
	})
}

// skip consumes any one value.
func (d *decoder) skip() error {
	switch c := d.peek(); {
	case c == '{':
		return d.object(func(string) error { return d.skip() })
	case c == '[':
		return d.array(d.skip)
	case c == '"':
		var s string
		return d.str(&s)
	case c == 't' && d.i+4 <= len(d.s) && string(d.s[d.i:d.i+4]) == "true":
		d.i += 4
	case c == 'f' && d.i+5 <= len(d.s) && string(d.s[d.i:d.i+5]) == "false":
		d.i += 5
	case c == 'n' && d.null():
	default:
		_, err := d.number()
		return err
	}
	return nil
}

// foldKey lower-cases ASCII letters: encoding/json matches member names
// without regard to case.
func foldKey(k string) string {
	for i := 0; i < len(k); i++ {
		if c := k[i]; 'A' <= c && c <= 'Z' {
			b := []byte(k)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return k
}
