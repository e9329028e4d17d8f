package azure_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/azure"
)

func TestOptions(t *testing.T) {
	c, err := azure.ParseConfig(hypervisor.Options{"storage-account": "acct", "lifetime": "90m", "max-instances": "2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.BlobEndpoint != "https://acct.blob.core.windows.net/" || c.Lifetime != 90*time.Minute || c.MaxInstances != 2 ||
		!c.KeepImage || c.VMSize != "Standard_B1s" || c.Container != "kitrun" || c.FakeCredential {
		t.Errorf("config %+v", c)
	}
	for _, bad := range []hypervisor.Options{
		{"subscriptoin": "x"}, {"arm-endpoint": "127.0.0.1:9"}, {"lifetime": "forever"}, {"max-instances": "0"},
		{"hardware": "vmbus"}, {"ingress-cidr": "1.2.3.4"}, {"keep-image": "maybe"},
		// A fake credential only with both endpoints overridden.
		{"fake-credential": "true"}, {"fake-credential": "true", "arm-endpoint": "http://127.0.0.1:9"},
	} {
		if _, err := azure.ParseConfig(bad); err == nil {
			t.Errorf("%v accepted", bad)
		} else if _, ok := bad["subscriptoin"]; ok && !strings.Contains(err.Error(), "subscription") {
			t.Errorf("an unknown key must name the valid ones: %v", err)
		}
	}
}

func TestPlatform(t *testing.T) {
	a, _ := arch.Lookup("x86_64")
	b, _ := azure.New(hypervisor.Options{})
	p, err := b.Platform(a)
	if err != nil {
		t.Fatal(err)
	}
	hw := p.Machines[azure.MachineGen2]
	if p.DefaultMachine != azure.MachineGen2 || hw.Channel != "" || !strings.HasPrefix(hw.Console, "ttyS0") || len(hw.NICModules) != 2 || hw.NICModules[1] != "hv_netvsc" {
		t.Errorf("platform %+v", p)
	}
	q, _ := azure.New(hypervisor.Options{"hardware": "qemu"})
	p, _ = q.Platform(a)
	if p.DefaultMachine != azure.MachineGen2QEMU || p.Machines[azure.MachineGen2QEMU].NICModules[1] != "virtio_net" {
		t.Errorf("qemu platform %+v", p)
	}
	if _, err := b.Start(t.Context(), hypervisor.Spec{}); err == nil {
		t.Error("Start without an image")
	}
	aa, _ := arch.Lookup("aarch64")
	if _, err := b.Platform(aa); err == nil {
		t.Error("aarch64 accepted")
	}
}
