// Package build is `kitrun build`: assemble a spec into an image directory.
package build

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
)

// Options are build's flags and arguments.
type Options struct {
	Spec   string
	OutDir string
	cmdutil.BuildOptions
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "build SPEC",
		Short: "Assemble an image (kernel, initrd, cmdline, manifest, disk images) from a spec",
		Long: `Assemble the image a spec describes into OUTDIR/<name>/: the kernel, the
compressed initramfs, the kernel command line and manifest.json, which lists
every file in the initramfs with its size, sha256 and origin — and, with
--format (or format: in the spec), bootable disk images in the formats
firmware and clouds take: ` + strings.Join(disk.Names(), ", ") + `.
The image is built for the --backend's platform (its devices, modules and
network); a disk image carries its kernel command line, wired for --machine.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Spec = args[0]
			return Run(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&o.OutDir, "output", "o", "out", "directory to write the image into (as OUTDIR/<name>)")
	cmd.Flags().StringSliceVar(&o.Formats, "format", nil, "disk formats to build beside the kernel and initramfs, comma separated: "+strings.Join(disk.Names(), ", "))
	cmd.Flags().StringVar(&o.ForMachine, "machine", "", "the machine type disk images are wired for (default: the platform's)")
	cmdutil.AddBuildFlags(cmd, &o.BuildOptions)
	return cmd
}

// Run builds the image.
func Run(ctx context.Context, o *Options, out io.Writer) error {
	res, err := cmdutil.Build(ctx, o.Spec, o.OutDir, o.BuildOptions)
	if err != nil {
		return err
	}
	m := res.Image.Manifest
	how := "built"
	if res.Cached {
		how = "initramfs from cache"
	}
	fmt.Fprintf(out, "%s: %s, %s, kernel %s, initrd %d bytes %s (%d uncompressed), %d files; %s in %s\n",
		res.Image.Dir, m.Name, m.Arch, m.KernelVersion, m.Initrd.Size, m.Initrd.Compression,
		m.Initrd.UncompressedSize, len(m.Files), how, res.Took.Round(1e6))
	names := make([]string, 0, len(m.Disks))
	for n := range m.Disks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d := m.Disks[n]
		fmt.Fprintf(out, "  %-8s %s: %d bytes (%d allocated), for %s\n", n, filepath.Join(res.Image.Dir, d.File), d.Size, d.Allocated, d.Machine)
	}
	if note := cmdutil.GuestOrigin(res); note != "" {
		fmt.Fprintf(out, "%s\n", note)
	}
	return nil
}
