package executor

import "github.com/spf13/pflag"

// SlurmFlags are the flags AddSlurmFlags defines: they stay with the
// submitting kitrun (a shard job is not given them).
var SlurmFlags = []string{"executor", "shards", "partition", "constraint", "gres", "slurm-mem", "slurm-time",
	"slurm-cpus", "sbatch-arg", "kitrun-path", "requeues"}

// AddSlurmFlags defines --executor and the Slurm executor's flags.
func AddSlurmFlags(f *pflag.FlagSet, executor *string, s *Slurm, shardsHelp string) {
	f.StringVar(executor, "executor", "local", "where to run: local (this machine) or slurm (batch jobs on a Slurm cluster; README: \"Executors\")")
	f.IntVar(&s.Shards, "shards", 2, "slurm: "+shardsHelp)
	f.StringVar(&s.Partition, "partition", "", "slurm: the partition to submit to (default the cluster's)")
	f.StringVar(&s.Constraint, "constraint", "", "slurm: node features a job needs, e.g. kvm")
	f.StringVar(&s.Gres, "gres", "", "slurm: generic resources a job needs, e.g. kvm:1")
	f.StringVar(&s.Mem, "slurm-mem", "", "slurm: memory per job (sbatch --mem), e.g. 4G (default 1G per VM at once)")
	f.StringVar(&s.Time, "slurm-time", "", "slurm: time limit per job (sbatch --time), e.g. 30 or 1:00:00")
	f.IntVar(&s.CPUs, "slurm-cpus", 0, "slurm: cores per job (default one per VM at once)")
	f.StringArrayVar(&s.SbatchArgs, "sbatch-arg", nil, "slurm: another sbatch option, e.g. --account=lab (repeatable)")
	f.StringVar(&s.Binary, "kitrun-path", "", "slurm: kitrun's path on the nodes (default this binary's path: put it on shared storage)")
	f.IntVar(&s.Requeues, "requeues", 1, "slurm: how often a job whose node was lost is submitted again")
}

// PassOn returns the flags set in f, but those in skip, as arguments for
// the same command in a job.
func PassOn(f *pflag.FlagSet, skip ...string) []string {
	no := map[string]bool{}
	for _, n := range append(skip, SlurmFlags...) {
		no[n] = true
	}
	var out []string
	f.Visit(func(fl *pflag.Flag) {
		if no[fl.Name] {
			return
		}
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				out = append(out, "--"+fl.Name+"="+v)
			}
			return
		}
		out = append(out, "--"+fl.Name+"="+fl.Value.String())
	})
	return out
}
