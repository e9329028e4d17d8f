package lifecycle

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"
)

// LogOptions configure Logs.
type LogOptions struct {
	// Events shows events.log instead of the console.
	Events bool
	// Follow keeps writing what comes until the VM ends or ctx does.
	Follow bool
	// Poll is how often a followed log is checked (default 100ms).
	Poll time.Duration
}

// Logs writes a VM's console (the rotated file first) or its events to w.
func (s *Store) Logs(ctx context.Context, name string, w io.Writer, o LogOptions) error {
	if err := s.exists(name); err != nil {
		return err
	}
	if o.Poll <= 0 {
		o.Poll = 100 * time.Millisecond
	}
	path := s.Path(name, ConsoleFile)
	if o.Events {
		path = s.Path(name, EventsFile)
	}
	// Both logs rotate: the older part first.
	if f, err := os.Open(path + ".1"); err == nil {
		_, err := io.Copy(w, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	f, err := os.Open(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	if f != nil {
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
	}
	if !o.Follow {
		return nil
	}
	tick := time.NewTicker(o.Poll)
	defer tick.Stop()
	checked := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if f == nil {
			if f, err = os.Open(path); err != nil {
				f = nil
			}
		}
		if f != nil {
			if _, err := io.Copy(w, f); err != nil {
				return err
			}
			// Rotated: finish the old file, go on with the new one.
			if cur, err := os.Stat(path); err == nil {
				if old, err := f.Stat(); err == nil && !os.SameFile(old, cur) {
					io.Copy(w, f)
					f.Close()
					f = nil
					continue
				}
			}
		}
		if time.Since(checked) >= 4*o.Poll {
			checked = time.Now()
			v, err := s.Get(name)
			var nf *NotFoundError
			if errors.As(err, &nf) {
				return nil // removed
			}
			// An unreadable state stays so (writes are atomic): stop too.
			if err != nil || !v.Running() {
				if f != nil {
					_, err := io.Copy(w, f)
					return err
				}
				return nil
			}
		}
	}
}
