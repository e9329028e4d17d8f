// Package build is `kitrun build`: assemble a spec into an image directory.
package build

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

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
		Short: "Assemble an image (kernel, initrd, cmdline, manifest) from a spec",
		Long: `Assemble the image a spec describes into OUTDIR/<name>/: the kernel, the
compressed initramfs, the kernel command line and manifest.json, which lists
every file in the initramfs with its size, sha256 and origin.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Spec = args[0]
			return Run(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&o.OutDir, "output", "o", "out", "directory to write the image into (as OUTDIR/<name>)")
	AddBuildFlags(cmd, &o.BuildOptions)
	return cmd
}

// AddBuildFlags adds the flags every building command shares.
func AddBuildFlags(cmd *cobra.Command, o *cmdutil.BuildOptions) {
	cmd.Flags().StringVar(&o.Arch, "arch", "", "target architecture: x86_64 or aarch64 (default: the host's)")
	cmd.Flags().StringVar(&o.Compression, "compression", "", "initramfs compression: zstd (default), gzip, xz, lz4, none")
	cmd.Flags().StringVar(&o.CacheDir, "cache-dir", "", "kitrun's cache (default $KITRUN_CACHE or ~/.cache/kitrun)")
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
	if note := cmdutil.GuestOrigin(res); note != "" {
		fmt.Fprintf(out, "%s\n", note)
	}
	return nil
}
