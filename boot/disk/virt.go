package disk

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/disk/awsimport"
	"github.com/kitrun/kitrun/boot/disk/gcptar"
	"github.com/kitrun/kitrun/boot/disk/grow"
	"github.com/kitrun/kitrun/boot/disk/internal/rawscan"
	"github.com/kitrun/kitrun/boot/disk/qcow2"
	"github.com/kitrun/kitrun/boot/disk/vhd"
	"github.com/kitrun/kitrun/boot/disk/vhdx"
	"github.com/kitrun/kitrun/boot/disk/vmdk"
)

// The virtual-disk containers and cloud bundles of the raw EFI disk: they
// boot where raw-efi does.
func init() {
	for _, f := range []*Format{
		{Name: "qcow2", File: "disk.qcow2", Summary: "raw-efi as QEMU's qcow2 (QEMU, OpenStack)",
			Build: container("qcow2", func(ctx context.Context, w io.Writer, r io.ReaderAt, size int64, _ string) error {
				return qcow2.Write(ctx, w, r, size)
			})},
		{Name: "vhd", File: "disk.vhd", Summary: "raw-efi as a fixed VHD of whole MiB (Azure)", Build: buildVHD},
		{Name: "vhdx", File: "disk.vhdx", Summary: "raw-efi as a dynamic VHDX (Hyper-V generation 2)",
			Build: container("vhdx", func(ctx context.Context, w io.Writer, r io.ReaderAt, size int64, _ string) error {
				return vhdx.Write(ctx, w, r, size)
			})},
		{Name: "vmdk", File: "disk.vmdk", Summary: "raw-efi as a stream-optimized VMDK (VMware ESXi, VirtualBox)",
			Build: container("vmdk", func(ctx context.Context, w io.Writer, r io.ReaderAt, size int64, out string) error {
				return vmdk.Write(ctx, w, r, size, vmdk.Options{FileName: filepath.Base(out)})
			})},
		{Name: "gcp", File: "gcp.tar.gz", Summary: "raw-efi as disk.raw of whole GiB in a GNU tar.gz (GCP image import)",
			Build: container("gcp", func(ctx context.Context, w io.Writer, r io.ReaderAt, size int64, _ string) error {
				g, err := grow.Grow(r, size, roundUp(size, gcptar.Alignment))
				if err != nil {
					return err
				}
				return gcptar.Write(ctx, w, g, g.Size())
			})},
		{Name: "aws", File: "aws.json", Summary: "raw-efi and the metadata of its import as an AMI (AWS)", Build: buildAWS},
	} {
		f.Firmware, f.Base, f.Arches = EFI, "raw-efi", efiArches()
		register(f)
	}
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// container makes the Build of format, which writes the base image in
// another container: the base is read through an io.ReaderAt, and what
// write writes appears at out only when complete.
func container(format string, write func(ctx context.Context, w io.Writer, r io.ReaderAt, size int64, out string) error) func(context.Context, *Input, string, string) error {
	return func(ctx context.Context, in *Input, base, out string) error {
		src, size, err := openBase(base)
		if err != nil {
			return fmt.Errorf("%s: %w", format, err)
		}
		defer src.Close()
		f, err := atomicfile.Create(out, 0o644)
		if err != nil {
			return outputError(format, out, 0, err)
		}
		defer f.Abort()
		bw := bufio.NewWriterSize(f, 1<<20)
		err = write(ctx, bw, src, size, out)
		if err == nil {
			err = bw.Flush()
		}
		if err == nil {
			err = f.Commit()
		}
		if err != nil {
			return outputError(format, out, 0, fmt.Errorf("from %s: %w", base, err))
		}
		return nil
	}
}

func openBase(base string) (*os.File, int64, error) {
	if base == "" {
		return nil, 0, fmt.Errorf("no base image to convert (the format needs raw-efi built first)")
	}
	f, err := os.Open(base)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// buildVHD grows the base to whole MiB (moving a GPT backup to the new
// end) and writes it to the file directly, so that zeros become holes.
func buildVHD(ctx context.Context, in *Input, base, out string) error {
	src, size, err := openBase(base)
	if err != nil {
		return fmt.Errorf("vhd: %w", err)
	}
	defer src.Close()
	g, err := grow.Grow(src, size, roundUp(size, vhd.Alignment))
	if err != nil {
		return fmt.Errorf("vhd: from %s: %w", base, err)
	}
	f, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return outputError("vhd", out, 0, err)
	}
	defer f.Abort()
	err = vhd.Write(ctx, f.File, g, g.Size(), vhd.Options{})
	if err == nil {
		err = f.Commit()
	}
	if err != nil {
		return outputError("vhd", out, g.Size()+vhd.FooterSize, fmt.Errorf("from %s: %w", base, err))
	}
	return nil
}

// buildAWS describes the base for import: the base file itself is what is
// uploaded.
func buildAWS(ctx context.Context, in *Input, base, out string) error {
	src, size, err := openBase(base)
	if err != nil {
		return fmt.Errorf("aws: %w", err)
	}
	defer src.Close()
	if err := rawscan.CheckSize(size); err != nil {
		return fmt.Errorf("aws: %s: %w", base, err)
	}
	if filepath.Dir(base) != filepath.Dir(out) {
		return fmt.Errorf("aws: aws.json must sit beside the raw image it describes (%s is not in %s)", base, filepath.Dir(out))
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, contextReader{ctx, src}, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("aws: hashing %s: %w", base, err)
	}
	m, err := awsimport.New(in.Name, in.Arch, filepath.Base(base), size, hex.EncodeToString(h.Sum(nil)))
	if err != nil {
		return fmt.Errorf("aws: %w", err)
	}
	b, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("aws: %w", err)
	}
	if err := atomicfile.Write(out, b, 0o644); err != nil {
		return outputError("aws", out, int64(len(b)), err)
	}
	return nil
}

// contextReader stops a long read when ctx is done.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
