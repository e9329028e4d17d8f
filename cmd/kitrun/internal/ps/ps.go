// Package ps is `kitrun ps`: list detached VMs and what really became of them.
package ps

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
	"github.com/kitrun/kitrun/hypervisor/lifecycle"
)

// Options are ps's flags.
type Options struct {
	StateDir string
	Format   string // table | json
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List detached VMs: state, arch, accelerator, uptime, ports, memory",
		Long: `List the VMs started with kitrun run -d. A VM whose supervisor died, or whose
recorded process is now another one, or that ran before the host rebooted,
is shown failed with the reason. MEMORY is QEMU's resident memory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	supervise.AddStateDirFlag(cmd, &o.StateDir)
	cmd.Flags().StringVar(&o.Format, "format", "table", "output format: table or json")
	return cmd
}

// Entry is one VM in `kitrun ps --format json` (schema in README.md).
type Entry struct {
	Name          string           `json:"name"`
	State         string           `json:"state"`
	Reason        string           `json:"reason,omitempty"`
	Failure       string           `json:"failure,omitempty"`
	Arch          string           `json:"arch,omitempty"`
	Machine       string           `json:"machine,omitempty"`
	Accel         string           `json:"accel,omitempty"`
	MemoryMiB     int              `json:"memory_mib,omitempty"`
	CPUs          int              `json:"cpus,omitempty"`
	Ports         []lifecycle.Port `json:"ports"`
	UptimeSeconds float64          `json:"uptime_seconds"`
	RSSBytes      int64            `json:"rss_bytes"`
	SupervisorPID int              `json:"supervisor_pid,omitempty"`
	Backend       string           `json:"backend,omitempty"`
	MachineID     string           `json:"machine_id,omitempty"`
	// MachinePID is the local process running the machine (QEMU's).
	MachinePID int       `json:"machine_pid,omitempty"`
	Image      string    `json:"image,omitempty"`
	Spec       string    `json:"spec,omitempty"`
	Created    time.Time `json:"created,omitzero"`
	Started    time.Time `json:"started,omitzero"`
	Ready      time.Time `json:"ready,omitzero"`
	Stopped    time.Time `json:"stopped,omitzero"`
	Error      string    `json:"error,omitempty"`
}

// Unknown is the state shown for a VM whose files are unreadable.
const Unknown = "unknown"

// Entries lists the store's VMs.
func Entries(store *lifecycle.Store) ([]Entry, error) {
	vms, err := store.List()
	if err != nil {
		return nil, err
	}
	out := []Entry{}
	for _, v := range vms {
		e := Entry{
			Name: v.Name, State: v.State.State, Reason: v.State.Reason, Failure: v.State.Failure,
			Arch: v.Meta.Arch, Machine: v.Meta.MachineUsed, Accel: v.Meta.AccelUsed,
			MemoryMiB: v.Meta.MemoryMiB, CPUs: v.Meta.CPUs, Ports: v.Meta.Published,
			UptimeSeconds: v.Uptime().Seconds(), RSSBytes: v.MachineRSS(),
			SupervisorPID: v.State.SupervisorPID, Backend: v.Meta.Backend,
			MachineID: v.State.MachineID, MachinePID: v.State.MachinePID,
			Image: v.Meta.Image, Spec: v.Meta.Spec, Created: v.Meta.Created,
			Started: v.State.Started, Ready: v.State.Ready, Stopped: v.State.Stopped,
		}
		if e.Accel == "" {
			e.Accel = v.Meta.Accel
		}
		if e.Ports == nil {
			e.Ports = []lifecycle.Port{}
		}
		if v.Err != nil {
			e.State, e.Error = Unknown, v.Err.Error()
		}
		out = append(out, e)
	}
	return out, nil
}

// Run lists the VMs.
func Run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	if o.Format != "table" && o.Format != "json" {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("bad --format %q; use table or json", o.Format))
	}
	store, err := supervise.Store(o.StateDir)
	if err != nil {
		return err
	}
	entries, err := Entries(store)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Error != "" {
			fmt.Fprintf(stderr, "kitrun: %s\n", e.Error)
		}
	}
	if o.Format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tARCH\tACCEL\tUPTIME\tPORTS\tMEMORY\tREASON")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.State, dash(e.Arch), dash(e.Accel),
			uptime(e.UptimeSeconds), ports(e.Ports), memory(e.RSSBytes), reason(e))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func uptime(s float64) string {
	if s <= 0 {
		return "-"
	}
	return (time.Duration(s) * time.Second).String()
}

func ports(ps []lifecycle.Port) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return dash(strings.Join(out, ","))
}

func memory(b int64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%dMiB", (b+1<<19)>>20)
}

func reason(e Entry) string {
	if e.State == Unknown {
		return "state unreadable (kitrun inspect " + e.Name + ")"
	}
	if lifecycle.Running(e.State) {
		return ""
	}
	return e.Reason
}
