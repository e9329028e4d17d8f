package gcp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/gcp"
)

func TestOptions(t *testing.T) {
	c, err := gcp.ParseConfig(hypervisor.Options{"project": "p", "zone": "z", "endpoint": "http://127.0.0.1:9/compute/v1/", "lifetime": "90m", "max-instances": "2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Endpoint != "http://127.0.0.1:9/compute/v1/" || c.Lifetime != 90*time.Minute || c.MaxInstances != 2 || !c.KeepImage || c.Network != "default" || c.GVNIC {
		t.Errorf("config %+v", c)
	}
	for _, bad := range []hypervisor.Options{
		{"projcet": "x"}, {"endpoint": "127.0.0.1:9"}, {"lifetime": "forever"}, {"max-instances": "0"},
		{"address": "elastic"}, {"gvnic": "yes"}, {"ingress-cidr": "1.2.3.4"}, {"keep-image": "maybe"},
	} {
		if _, err := gcp.ParseConfig(bad); err == nil {
			t.Errorf("%v accepted", bad)
		} else if _, ok := bad["projcet"]; ok && !strings.Contains(err.Error(), "project") {
			t.Errorf("an unknown key must name the valid ones: %v", err)
		}
	}
}

func TestPlatform(t *testing.T) {
	x86, _ := arch.Lookup("x86_64")
	b, _ := gcp.New(hypervisor.Options{})
	p, err := b.Platform(x86)
	if err != nil {
		t.Fatal(err)
	}
	name, hw, err := p.Machine("")
	if err != nil || name != gcp.Machine || hw.DiskSeed != initproto.SeedGCE || strings.Join(hw.NICModules, ",") != "virtio_pci,virtio_net" || p.Network.Address != "" {
		t.Errorf("platform %+v %+v: %v", p, hw, err)
	}
	g, _ := gcp.New(hypervisor.Options{"gvnic": "true"})
	p, _ = g.Platform(x86)
	if _, hw, _ := p.Machine(""); !strings.Contains(strings.Join(hw.NICModules, ","), "gve") {
		t.Errorf("gvnic=true: NIC modules %v", hw.NICModules)
	}
}
