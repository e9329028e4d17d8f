package disk

import (
	"errors"
	"fmt"
	"syscall"
)

// outputError explains a failed write of a format's output file out (of
// size bytes, apparent; 0 if not known in advance, as for a container
// whose size depends on the content): a full device, a quota or a
// file-size limit is said plainly, since the wrapped error names only a
// temporary file.
func outputError(format, out string, size int64, err error) error {
	switch {
	case (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) && size > 0:
		return fmt.Errorf("%s: no room for %s (%d bytes, sparse) on its device: %w", format, out, size, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%s: no room for %s on its device: %w", format, out, err)
	case errors.Is(err, syscall.EFBIG) && size > 0:
		return fmt.Errorf("%s: no room for %s: its %d bytes exceed the largest file this process may write there: %w", format, out, size, err)
	case errors.Is(err, syscall.EFBIG):
		return fmt.Errorf("%s: no room for %s: it would exceed the largest file this process may write there: %w", format, out, err)
	}
	return fmt.Errorf("%s: %w", format, err)
}
