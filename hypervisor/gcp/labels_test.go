package gcp

import (
	"regexp"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/cloud"
)

func TestNamesAndLabels(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	for _, s := range []string{"kitrun-abc-20261203T080614Z-my_host.example-1234-ab12", "9lives", "kitrun-" + string(make([]byte, 80))} {
		if n := resourceName(s); !valid.MatchString(n) || len(n) > 63 {
			t.Errorf("resourceName(%q) = %q", s, n)
		}
	}
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	tags := cloud.Tags(now, time.Hour, map[string]string{cloud.TagDigest: "ab", cloud.TagName: "Kitrun Web"})
	l := labels(tags)
	if l[LabelName] != "kitrun-web" || l[LabelCreated] != "1796284800" || l[LabelRun] != labelValue(cloud.RunID()) {
		t.Errorf("labels %v", l)
	}
	back := tagsOf(l)
	if back[cloud.TagCreated] != tags[cloud.TagCreated] || back[cloud.TagExpires] != tags[cloud.TagExpires] {
		t.Errorf("tags back %v, want %v", back, tags)
	}
	if due, why := (cloud.SweepOptions{Now: now.Add(2 * time.Hour)}).Due(cloud.Resource{Tags: back}); !due {
		t.Errorf("an expired instance is not due: %s", why)
	}
	fw := firewallLabels(firewallDescription(tags))
	if fw[LabelRun] != l[LabelRun] || fw[LabelExpires] != l[LabelExpires] {
		t.Errorf("firewall labels %v", fw)
	}
}
