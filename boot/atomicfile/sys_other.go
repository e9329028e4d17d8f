//go:build !unix

package atomicfile

// syncDir: directories cannot be synced here; the rename is atomic anyway.
func syncDir(string) error { return nil }
