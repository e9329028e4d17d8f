package aws_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/aws"
)

func TestOptions(t *testing.T) {
	c, err := aws.ParseConfig(hypervisor.Options{"endpoint": "http://127.0.0.1:9", "lifetime": "90m", "max-instances": "2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.EC2Endpoint != "http://127.0.0.1:9" || c.S3Endpoint != c.EC2Endpoint || c.Lifetime != 90*time.Minute || c.MaxInstances != 2 || !c.KeepImage {
		t.Errorf("config %+v", c)
	}
	for _, bad := range []hypervisor.Options{
		{"regoin": "x"}, {"endpoint": "127.0.0.1:9"}, {"lifetime": "forever"}, {"max-instances": "0"},
		{"address": "elastic"}, {"emulated-nic": "e1000"}, {"ingress-cidr": "1.2.3.4"}, {"keep-image": "maybe"},
	} {
		if _, err := aws.ParseConfig(bad); err == nil {
			t.Errorf("%v accepted", bad)
		} else if _, ok := bad["regoin"]; ok && !strings.Contains(err.Error(), "region") {
			t.Errorf("an unknown key must name the valid ones: %v", err)
		}
	}
}

func TestPlatform(t *testing.T) {
	x86, _ := arch.Lookup("x86_64")
	b, _ := aws.New(hypervisor.Options{})
	p, err := b.Platform(x86)
	if err != nil {
		t.Fatal(err)
	}
	name, hw, err := p.Machine("")
	if err != nil || name != aws.Machine || hw.Channel != "" || hw.DiskSeed != initproto.SeedAWS || strings.Join(hw.NICModules, ",") != "ena" || p.Network.Address != "" {
		t.Errorf("platform %+v %+v: %v", p, hw, err)
	}
	cmd := hw.Cmdline("quiet", hypervisorWiring())
	for _, want := range []string{"console=ttyS0,115200n8", "kitrun.channel=console", "ena"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command line %q lacks %q", cmd, want)
		}
	}
	fb, _ := aws.New(hypervisor.Options{"emulated-nic": "virtio"})
	p, _ = fb.Platform(x86)
	if _, hw, _ := p.Machine(""); !strings.Contains(strings.Join(hw.NICModules, ","), "virtio_net") {
		t.Errorf("emulated-nic=virtio: NIC modules %v", hw.NICModules)
	}
}

func hypervisorWiring() platform.Wiring { return platform.Wiring{Network: true, Disk: true} }
