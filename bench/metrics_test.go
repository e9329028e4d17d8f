package bench

import (
	"slices"
	"strings"
	"testing"
)

func TestLookupMetric(t *testing.T) {
	tests := []struct {
		name      string
		ok        bool
		unit      string
		lower     bool
		exact     bool
		canonical string // the registry entry it belongs to
	}{
		{"boot.all_ready", true, "s", true, false, "boot.all_ready"},
		{"boot.vmm_ready", true, "s", true, false, "boot.vmm_ready"},
		{"guest.init_start", true, "s", true, false, "guest.init_start"},
		{"shutdown", true, "s", true, false, "shutdown"},
		{"boot.task.load-modules", true, "s", true, false, "boot.task.<name>"},
		{"boot.service_ready.sshd", true, "s", true, false, "boot.service_ready.<name>"},
		{"mem.guest_total", true, "B", false, false, "mem.guest_total"},
		{"mem.guest_available", true, "B", false, false, "mem.guest_available"},
		{"mem.qemu_pss", true, "B", true, false, "mem.qemu_pss"},
		{"mem.service_rss.sshd", true, "B", true, false, "mem.service_rss.<name>"},
		{"disk.initrd", true, "B", true, true, "disk.initrd"},
		{"disk.component.busybox", true, "B", true, true, "disk.component.<name>"},
		{"ratio.all_ready_floor", true, "ratio", true, false, "ratio.all_ready_floor"},
		{"boot.task.", false, "", false, false, ""}, // a family needs a name
		{"boot.tasks", false, "", false, false, ""},
		{"boot.all_ready.x", false, "", false, false, ""},
		{"boot", false, "", false, false, ""},
		{"", false, "", false, false, ""},
	}
	for _, tt := range tests {
		m, ok := LookupMetric(tt.name)
		if ok != tt.ok {
			t.Errorf("LookupMetric(%q) ok = %v, want %v", tt.name, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if m.Name != tt.name || m.Unit != tt.unit || m.Lower != tt.lower || m.Exact != tt.exact {
			t.Errorf("LookupMetric(%q) = %+v, want unit %s lower %v exact %v", tt.name, m, tt.unit, tt.lower, tt.exact)
		}
		if i := metricIndex(tt.name); Metrics[i].Name != tt.canonical {
			t.Errorf("%s belongs to %s, want %s", tt.name, Metrics[i].Name, tt.canonical)
		}
	}
}

func TestMetricsRegistry(t *testing.T) {
	seen := make(map[string]bool)
	for _, m := range Metrics {
		if seen[m.Name] {
			t.Errorf("%s registered twice", m.Name)
		}
		seen[m.Name] = true
		if m.Unit != UnitSeconds && m.Unit != UnitBytes && m.Unit != UnitRatio {
			t.Errorf("%s: unit %q", m.Name, m.Unit)
		}
		if m.Doc == "" {
			t.Errorf("%s: no Doc", m.Name)
		}
		if strings.ContainsAny(m.Name, " -/*%") {
			// benchfmtUnit relies on these not being in registry names.
			t.Errorf("%s: name has a space, -, /, * or %%", m.Name)
		}
		if strings.Contains(m.Name, "<") && !strings.HasSuffix(m.Name, familySuffix) {
			t.Errorf("%s: a family's <name> must come last", m.Name)
		}
	}
}

func TestValidateMetricNames(t *testing.T) {
	valid := [][]string{
		nil,
		{"boot.all_ready"},
		{"boot.task.udev", "mem.service_rss.sshd", "disk.component.busybox"},
		{"mem.*", "boot.task.*", "disk.*", "boot.*"},
	}
	for _, names := range valid {
		if err := ValidateMetricNames(names); err != nil {
			t.Errorf("ValidateMetricNames(%q) = %v, want nil", names, err)
		}
	}

	tests := []struct {
		names []string
		bad   []string // each named in the error
	}{
		{[]string{"boot.al_ready"}, []string{`"boot.al_ready"`}},
		{[]string{"boot.all_ready", "memory", "boot.task."}, []string{`"memory"`, `"boot.task."`}},
		{[]string{"foo.*"}, []string{`"foo.*"`}},
		{[]string{"boot*"}, []string{`"boot*"`}},
	}
	for _, tt := range tests {
		err := ValidateMetricNames(tt.names)
		if err == nil {
			t.Errorf("ValidateMetricNames(%q) = nil, want an error", tt.names)
			continue
		}
		msg := err.Error()
		for _, want := range append(tt.bad, "boot.all_ready", "boot.task.<name>", "mem.qemu_pss", "mem.*") {
			if !strings.Contains(msg, want) {
				t.Errorf("ValidateMetricNames(%q) = %q, does not mention %s", tt.names, msg, want)
			}
		}
	}
}

func TestSelectMetric(t *testing.T) {
	tests := []struct {
		sels []string
		name string
		want bool
	}{
		{nil, "boot.all_ready", true},
		{[]string{"boot.all_ready"}, "boot.all_ready", true},
		{[]string{"boot.all_ready"}, "boot.all_ready_x", false},
		{[]string{"mem.*"}, "mem.qemu_pss", true},
		{[]string{"mem.*"}, "boot.all_ready", false},
		{[]string{"boot.task.*"}, "boot.task.udev", true},
		{[]string{"boot.task.*", "disk.initrd"}, "disk.initrd", true},
	}
	for _, tt := range tests {
		if got := selectMetric(tt.sels, tt.name); got != tt.want {
			t.Errorf("selectMetric(%q, %s) = %v, want %v", tt.sels, tt.name, got, tt.want)
		}
	}
}

func TestSortMetricNames(t *testing.T) {
	names := []string{"zzz.unknown", "disk.initrd", "boot.task.b", "aaa.unknown", "boot.all_ready", "boot.task.a", "boot.vmm_ready"}
	sortMetricNames(names)
	want := []string{"boot.vmm_ready", "boot.all_ready", "boot.task.a", "boot.task.b", "disk.initrd", "aaa.unknown", "zzz.unknown"}
	if !slices.Equal(names, want) {
		t.Errorf("sorted: %v\nwant:   %v", names, want)
	}
}
