package kernel

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestFindDeb(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{
		"linux-image-6.1.0-9-cloud-amd64_6.1.27-1_amd64.deb",
		"linux-image-6.1.0-10-cloud-amd64_6.1.38-1_amd64.deb",
		"linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb",
		"linux-image-6.1.0-56-cloud-amd64_6.1.192-1_amd64.deb",
		"linux-image-6.1.0-56-cloud-amd64_6.1.192-2~bpo1_amd64.deb",
		// never the newest cloud-amd64 kernel:
		"linux-image-6.1.0-99-cloud-amd64-dbg_6.1.999-1_amd64.deb",
		"linux-image-6.1.0-99-cloud-amd64-unsigned_6.1.999-1_amd64.deb",
		"linux-image-6.1.0-99-amd64_6.1.999-1_amd64.deb",
		"linux-image-6.1.0-99-rt-amd64_6.1.999-1_amd64.deb",
		"linux-image-6.1.0-99-cloud-arm64_6.1.999-1_arm64.deb",
		"linux-image-cloud-amd64_6.1.999-1_amd64.deb", // the metapackage
		"linux-headers-6.1.0-99-cloud-amd64_6.1.999-1_amd64.deb",
		"linux-image-6.1.0-99-cloud-amd64_6.1.999-1_amd64.deb.partial",
		"README",
	} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	os.Mkdir(filepath.Join(dir, "linux-image-6.1.0-98-cloud-amd64_6.1.998-1_amd64.deb"), 0o755)
	for _, pkg := range []string{"linux-image", "linux-image-cloud", "linux-image-cloud-amd64"} {
		got, err := FindDeb(dir, pkg, "cloud-amd64")
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, "linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb"); got != want {
			t.Errorf("FindDeb(%s) = %s, want %s", pkg, filepath.Base(got), filepath.Base(want))
		}
	}
	for flavour, want := range map[string]string{
		"cloud-arm64": "linux-image-6.1.0-99-cloud-arm64_6.1.999-1_arm64.deb",
		"amd64":       "linux-image-6.1.0-99-amd64_6.1.999-1_amd64.deb",
		"rt-amd64":    "linux-image-6.1.0-99-rt-amd64_6.1.999-1_amd64.deb",
	} {
		got, err := FindDeb(dir, "linux-image", flavour)
		if err != nil || filepath.Base(got) != want {
			t.Errorf("FindDeb(%s) = %s, %v; want %s", flavour, got, err, want)
		}
	}

	// An epoch beats everything; apt-get download writes ':' as "%3a".
	os.WriteFile(filepath.Join(dir, "linux-image-6.1.0-1-cloud-amd64_1%3a6.1.1-1_amd64.deb"), nil, 0o644)
	if got, _ := FindDeb(dir, "linux-image-cloud", "cloud-amd64"); filepath.Base(got) != "linux-image-6.1.0-1-cloud-amd64_1%3a6.1.1-1_amd64.deb" {
		t.Errorf("epoch: %s", got)
	}
}

func TestFindDebNone(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "linux-image-6.1.0-56-cloud-arm64_6.1.192-2_arm64.deb"), nil, 0o644)
	_, err := FindDeb(dir, "linux-image-cloud", "cloud-amd64")
	want := `no linux-image-*-cloud-amd64 .deb in ` + dir + `; run "make kernels" or "apt-get download linux-image-cloud-amd64" there (arm64: dpkg --add-architecture arm64 && apt-get update first)`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("error does not match fs.ErrNotExist")
	}
	var nd *NoDebError
	if !errors.As(err, &nd) || nd.Flavour != "cloud-amd64" {
		t.Errorf("errors.As: %+v", nd)
	}
	missing := filepath.Join(dir, "nope")
	if _, err := FindDeb(missing, "linux-image", "cloud-arm64"); err == nil || err.Error() != `no linux-image-*-cloud-arm64 .deb in `+missing+`; run "make kernels" or "apt-get download linux-image-cloud-arm64" there (arm64: dpkg --add-architecture arm64 && apt-get update first)` {
		t.Errorf("missing dir: %v", err)
	}
}

func TestPackagePrefix(t *testing.T) {
	for _, tc := range []struct{ pkg, flavour, want string }{
		{"linux-image", "cloud-amd64", "linux-image"},
		{"linux-image-cloud", "cloud-amd64", "linux-image"},
		{"linux-image-cloud-amd64", "cloud-amd64", "linux-image"},
		{"linux-image-amd64", "amd64", "linux-image"},
		{"linux-image-rt", "rt-arm64", "linux-image"},
		{"linux-image-cloud", "amd64", "linux-image-cloud"},
		{"cloud", "cloud-amd64", "cloud"},
	} {
		if got := PackagePrefix(tc.pkg, tc.flavour); got != tc.want {
			t.Errorf("PackagePrefix(%s, %s) = %s, want %s", tc.pkg, tc.flavour, got, tc.want)
		}
	}
}
