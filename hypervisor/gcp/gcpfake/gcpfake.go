// Package gcpfake is a local stand-in for the Google Cloud services
// kitrun's GCP backend calls, for tests only: Cloud Storage
// (github.com/fsouza/fake-gcs-server, in-process) and a small Compute
// Engine REST control plane (JSON, operations, Google's error format) that
// boots an image's disk with QEMU — q35 with OVMF, the disk on
// virtio-scsi, a virtio NIC on user networking whose published ports are
// those the firewall rules targeting the instance open, forwarded from a
// loopback address of the instance's own — and serves its serial console
// through getSerialPortOutput as Compute Engine does: from a byte offset,
// with the next offset, out of a bounded buffer (1 MiB; smaller when a
// test asks) that drops the oldest output.
//
// The real REST clients talk to it through endpoint overrides, without
// credentials. Faults are injected per call: rate limiting (429),
// failures with any status, and operations that end in an error code
// (ZONE_RESOURCE_POOL_EXHAUSTED, QUOTA_EXCEEDED).
//
// Only tests import this package.
package gcpfake

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/cloud/cloudfake"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	compute "google.golang.org/api/compute/v1"
)

// Bucket is the bucket the fake Cloud Storage starts with.
const Bucket = "kitrun-test"

// Project and Zone are what the fake serves.
const (
	Project = "kitrun-fake"
	Zone    = "fake-zone-a"
)

// Options configure a fake.
type Options struct {
	// Boot: instances boot their image with QEMU. Otherwise an instance
	// is a placeholder that runs (printing one console line) until it is
	// stopped or deleted: enough for the control-plane faults.
	Boot bool
	// SerialBuffer is how much console output getSerialPortOutput keeps
	// (default 1 MiB, as Compute Engine).
	SerialBuffer int64
	// MachineTypes the zone offers (default e2-micro, e2-small).
	MachineTypes []string
	Log          func(format string, args ...any)
}

// Fake is a running fake of Cloud Storage and Compute Engine.
type Fake struct {
	ComputeURL, StorageURL string
	GCS                    *fakestorage.Server

	o   Options
	dir string
	srv *httptest.Server

	mu        sync.Mutex
	calls     map[string]int
	throttle  map[string]int
	fail      map[string]int
	failOp    map[string]string
	images    map[string]*compute.Image
	instances map[string]*instance
	firewalls map[string]*compute.Firewall
	ops       map[string]*compute.Operation
	requests  map[string]*compute.Operation
	nextAddr  int
	closed    bool
}

type instance struct {
	*compute.Instance
	dir, console string
	disk         string
	ports        []int
	vm           *cloudfake.QEMU
	exited       chan struct{}
	stopAsked    bool
	deleted      bool
}

// Start starts the fake; it stops (and its QEMUs die) when the test ends.
func Start(t testing.TB, o Options) *Fake {
	t.Helper()
	if o.SerialBuffer == 0 {
		o.SerialBuffer = 1 << 20
	}
	if len(o.MachineTypes) == 0 {
		o.MachineTypes = []string{"e2-micro", "e2-small"}
	}
	if o.Log == nil {
		o.Log = t.Logf
	}
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: 0, Writer: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: Bucket})
	f := &Fake{
		o: o, dir: t.TempDir(), GCS: gcs,
		calls: map[string]int{}, throttle: map[string]int{}, fail: map[string]int{}, failOp: map[string]string{},
		images: map[string]*compute.Image{}, instances: map[string]*instance{}, firewalls: map[string]*compute.Firewall{},
		ops: map[string]*compute.Operation{}, requests: map[string]*compute.Operation{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.ComputeURL = f.srv.URL + "/compute/v1/"
	f.StorageURL = gcs.URL() + "/storage/v1/"
	t.Cleanup(f.Close)
	return f
}

// BackendOptions are the GCP backend's options for this fake.
func (f *Fake) BackendOptions() map[string]string {
	return map[string]string{
		"project": Project, "zone": Zone, "endpoint": f.ComputeURL, "storage-endpoint": f.StorageURL,
		"bucket": Bucket, "poll": "200ms", "max-backoff": "300ms", "ingress-cidr": "127.0.0.1/32",
	}
}

// Close stops the servers and kills every instance's QEMU.
func (f *Fake) Close() {
	f.mu.Lock()
	f.closed = true
	var insts []*instance
	for _, in := range f.instances {
		insts = append(insts, in)
	}
	f.mu.Unlock()
	for _, in := range insts {
		f.kill(in)
	}
	f.srv.Close()
	f.GCS.Stop()
}

// Throttle makes the next n calls of call ("instances.insert",
// "instances.get", …) answer 429.
func (f *Fake) Throttle(call string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle[call] = n
}

// Fail makes every call of call answer this HTTP status (0: no more).
func (f *Fake) Fail(call string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status == 0 {
		delete(f.fail, call)
	} else {
		f.fail[call] = status
	}
}

// FailOp makes the operations of call end with this error code.
func (f *Fake) FailOp(call, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failOp[call] = code
}

// Calls is how many times call was made (throttled ones included).
func (f *Fake) Calls(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[call]
}

// Objects lists the bucket's objects.
func (f *Fake) Objects() []string {
	objs, _, _ := f.GCS.ListObjects(Bucket, "", "", false)
	var out []string
	for _, o := range objs {
		out = append(out, o.Name)
	}
	return out
}

// Resources lists what exists: instances, firewall rules, images, objects.
func (f *Fake) Resources() []string {
	f.mu.Lock()
	var out []string
	for n := range f.instances {
		out = append(out, "instance "+n)
	}
	for n := range f.firewalls {
		out = append(out, "firewall "+n)
	}
	for n := range f.images {
		out = append(out, "image "+n)
	}
	f.mu.Unlock()
	for _, o := range f.Objects() {
		out = append(out, "object "+o)
	}
	return out
}

// Transient is Resources less the images (kept for reuse).
func (f *Fake) Transient() []string {
	var out []string
	for _, r := range f.Resources() {
		if !strings.HasPrefix(r, "image ") {
			out = append(out, r)
		}
	}
	return out
}

// Labels returns a resource's labels ("instance NAME" or "image NAME").
func (f *Fake) Labels(kind, name string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch kind {
	case "instance":
		if in := f.instances[name]; in != nil {
			return in.Labels
		}
	case "image":
		if im := f.images[name]; im != nil {
			return im.Labels
		}
	}
	return nil
}

// Instances lists the instances' names and statuses.
func (f *Fake) Instances() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]string{}
	for n, in := range f.instances {
		m[n] = in.Status
	}
	return m
}

type apiError struct {
	code    int
	reason  string
	message string
}

func errf(code int, reason, format string, args ...any) *apiError {
	return &apiError{code: code, reason: reason, message: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": e.code, "message": e.message,
		"errors": []map[string]string{{"reason": e.reason, "message": e.message, "domain": "global"}},
	}})
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var routes = []struct {
	method string
	re     *regexp.Regexp
	call   string
}{
	{"GET", regexp.MustCompile(`^zones/([^/]+)/machineTypes/([^/]+)$`), "machineTypes.get"},
	{"GET", regexp.MustCompile(`^global/images$`), "images.list"},
	{"POST", regexp.MustCompile(`^global/images$`), "images.insert"},
	{"GET", regexp.MustCompile(`^global/images/([^/]+)$`), "images.get"},
	{"DELETE", regexp.MustCompile(`^global/images/([^/]+)$`), "images.delete"},
	{"POST", regexp.MustCompile(`^global/images/([^/]+)/setLabels$`), "images.setLabels"},
	{"POST", regexp.MustCompile(`^global/operations/([^/]+)/wait$`), "globalOperations.wait"},
	{"GET", regexp.MustCompile(`^global/operations/([^/]+)$`), "globalOperations.get"},
	{"POST", regexp.MustCompile(`^zones/([^/]+)/operations/([^/]+)/wait$`), "zoneOperations.wait"},
	{"GET", regexp.MustCompile(`^zones/([^/]+)/operations/([^/]+)$`), "zoneOperations.get"},
	{"GET", regexp.MustCompile(`^global/firewalls$`), "firewalls.list"},
	{"POST", regexp.MustCompile(`^global/firewalls$`), "firewalls.insert"},
	{"DELETE", regexp.MustCompile(`^global/firewalls/([^/]+)$`), "firewalls.delete"},
	{"GET", regexp.MustCompile(`^zones/([^/]+)/instances$`), "instances.list"},
	{"POST", regexp.MustCompile(`^zones/([^/]+)/instances$`), "instances.insert"},
	{"GET", regexp.MustCompile(`^zones/([^/]+)/instances/([^/]+)$`), "instances.get"},
	{"DELETE", regexp.MustCompile(`^zones/([^/]+)/instances/([^/]+)$`), "instances.delete"},
	{"POST", regexp.MustCompile(`^zones/([^/]+)/instances/([^/]+)/stop$`), "instances.stop"},
	{"GET", regexp.MustCompile(`^zones/([^/]+)/instances/([^/]+)/serialPort$`), "instances.getSerialPortOutput"},
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	prefix := "/compute/v1/projects/" + Project + "/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		writeError(w, errf(404, "notFound", "The resource '%s' was not found (project %s only)", r.URL.Path, Project))
		return
	}
	path := strings.TrimPrefix(r.URL.Path, prefix)
	for _, rt := range routes {
		m := rt.re.FindStringSubmatch(path)
		if m == nil || rt.method != r.Method {
			continue
		}
		if strings.HasPrefix(path, "zones/") && m[1] != Zone {
			writeError(w, errf(404, "notFound", "The resource 'projects/%s/zones/%s' was not found", Project, m[1]))
			return
		}
		f.mu.Lock()
		f.calls[rt.call]++
		if f.throttle[rt.call] > 0 {
			f.throttle[rt.call]--
			f.mu.Unlock()
			writeError(w, errf(429, "rateLimitExceeded", "Rate Limit Exceeded"))
			return
		}
		if code := f.fail[rt.call]; code != 0 {
			f.mu.Unlock()
			writeError(w, errf(code, "backendError", "fake: %s fails", rt.call))
			return
		}
		closed := f.closed
		f.mu.Unlock()
		if closed {
			writeError(w, errf(503, "backendError", "fake closed"))
			return
		}
		body, _ := io.ReadAll(r.Body)
		v, e := f.handle(rt.call, m[1:], r, body)
		if e != nil {
			writeError(w, e)
			return
		}
		writeJSON(w, v)
		return
	}
	writeError(w, errf(404, "notFound", "fake: no %s %s", r.Method, path))
}

func last(args []string) string { return args[len(args)-1] }

func (f *Fake) handle(call string, args []string, r *http.Request, body []byte) (any, *apiError) {
	q := r.URL.Query()
	switch call {
	case "machineTypes.get":
		for _, mt := range f.o.MachineTypes {
			if mt == args[1] {
				return &compute.MachineType{Name: mt, Zone: Zone}, nil
			}
		}
		return nil, errf(404, "notFound", "The resource 'projects/%s/zones/%s/machineTypes/%s' was not found", Project, Zone, args[1])
	case "images.list":
		return f.listImages(q.Get("filter"))
	case "images.insert":
		var im compute.Image
		if err := json.Unmarshal(body, &im); err != nil {
			return nil, errf(400, "invalid", "%v", err)
		}
		return f.insertImage(&im)
	case "images.get":
		f.mu.Lock()
		defer f.mu.Unlock()
		if im := f.images[args[0]]; im != nil {
			return im, nil
		}
		return nil, errf(404, "notFound", "The resource 'projects/%s/global/images/%s' was not found", Project, args[0])
	case "images.delete":
		f.mu.Lock()
		defer f.mu.Unlock()
		im := f.images[args[0]]
		if im == nil {
			return nil, errf(404, "notFound", "The resource 'projects/%s/global/images/%s' was not found", Project, args[0])
		}
		delete(f.images, args[0])
		os.Remove(filepath.Join(f.dir, "images", im.Name+".raw"))
		return f.op(call, "delete", im.Name, ""), nil
	case "images.setLabels":
		var req compute.GlobalSetLabelsRequest
		json.Unmarshal(body, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		im := f.images[args[0]]
		if im == nil {
			return nil, errf(404, "notFound", "The resource 'projects/%s/global/images/%s' was not found", Project, args[0])
		}
		if req.LabelFingerprint != im.LabelFingerprint {
			return nil, errf(412, "conditionNotMet", "Labels fingerprint either invalid or resource labels have changed")
		}
		im.Labels = req.Labels
		im.LabelFingerprint = newID()
		return f.op(call, "setLabels", im.Name, ""), nil
	case "globalOperations.wait", "globalOperations.get", "zoneOperations.wait", "zoneOperations.get":
		f.mu.Lock()
		defer f.mu.Unlock()
		op := f.ops[last(args)]
		if op == nil {
			return nil, errf(404, "notFound", "The resource 'operations/%s' was not found", last(args))
		}
		if strings.HasSuffix(call, ".wait") {
			op.Status = "DONE"
		}
		return op, nil
	case "firewalls.list":
		f.mu.Lock()
		defer f.mu.Unlock()
		l := &compute.FirewallList{}
		for _, fw := range f.firewalls {
			l.Items = append(l.Items, fw)
		}
		return l, nil
	case "firewalls.insert":
		var fw compute.Firewall
		if err := json.Unmarshal(body, &fw); err != nil {
			return nil, errf(400, "invalid", "%v", err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.firewalls[fw.Name] != nil {
			return nil, errf(409, "alreadyExists", "The resource 'projects/%s/global/firewalls/%s' already exists", Project, fw.Name)
		}
		f.firewalls[fw.Name] = &fw
		return f.op(call, "insert", fw.Name, ""), nil
	case "firewalls.delete":
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.firewalls[args[0]] == nil {
			return nil, errf(404, "notFound", "The resource 'projects/%s/global/firewalls/%s' was not found", Project, args[0])
		}
		delete(f.firewalls, args[0])
		return f.op(call, "delete", args[0], ""), nil
	case "instances.list":
		f.mu.Lock()
		defer f.mu.Unlock()
		match, e := labelFilter(q.Get("filter"))
		if e != nil {
			return nil, e
		}
		l := &compute.InstanceList{}
		for _, in := range f.instances {
			if match(in.Labels) {
				l.Items = append(l.Items, in.Instance)
			}
		}
		return l, nil
	case "instances.insert":
		var ci compute.Instance
		if err := json.Unmarshal(body, &ci); err != nil {
			return nil, errf(400, "invalid", "%v", err)
		}
		return f.insertInstance(&ci, q.Get("requestId"))
	case "instances.get":
		f.mu.Lock()
		defer f.mu.Unlock()
		if in := f.instances[args[1]]; in != nil {
			return in.Instance, nil
		}
		return nil, errf(404, "notFound", "The resource 'projects/%s/zones/%s/instances/%s' was not found", Project, Zone, args[1])
	case "instances.stop":
		return f.stopInstance(args[1])
	case "instances.delete":
		return f.deleteInstance(args[1])
	case "instances.getSerialPortOutput":
		return f.serialPort(args[1], q.Get("start"))
	}
	return nil, errf(500, "backendError", "fake: %s not handled", call)
}

// op records an operation (RUNNING until waited for, as a slow real one)
// that ends with the error FailOp set for call, if any. f.mu is held.
func (f *Fake) op(call, kind, target, zone string) *compute.Operation {
	op := &compute.Operation{Name: "operation-" + newID(), OperationType: kind, Status: "RUNNING", TargetLink: target, Zone: zone}
	if code := f.failOp[call]; code != "" {
		op.Error = &compute.OperationError{Errors: []*compute.OperationErrorErrors{{Code: code, Message: "fake: " + code}}}
	}
	f.ops[op.Name] = op
	return op
}

// labelFilter understands the filters the backend sends:
// `labels.KEY = "VALUE"` and `labels.KEY:*`.
func labelFilter(s string) (func(map[string]string) bool, *apiError) {
	s = strings.TrimSpace(s)
	if s == "" {
		return func(map[string]string) bool { return true }, nil
	}
	if m := regexp.MustCompile(`^labels\.([a-z0-9_-]+)\s*=\s*"([^"]*)"$`).FindStringSubmatch(s); m != nil {
		return func(l map[string]string) bool { v, ok := l[m[1]]; return ok && v == m[2] }, nil
	}
	if m := regexp.MustCompile(`^labels\.([a-z0-9_-]+):\*$`).FindStringSubmatch(s); m != nil {
		return func(l map[string]string) bool { _, ok := l[m[1]]; return ok }, nil
	}
	return nil, errf(400, "invalid", "fake: filter %q not understood", s)
}

func (f *Fake) listImages(filter string) (any, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	match, e := labelFilter(filter)
	if e != nil {
		return nil, e
	}
	l := &compute.ImageList{}
	for _, im := range f.images {
		if match(im.Labels) {
			l.Items = append(l.Items, im)
		}
	}
	return l, nil
}

// insertImage reads the archive from the fake bucket and extracts its
// disk.raw (sparsely) as the image.
func (f *Fake) insertImage(im *compute.Image) (any, *apiError) {
	const gs = "https://storage.googleapis.com/"
	if im.RawDisk == nil || !strings.HasPrefix(im.RawDisk.Source, gs) {
		return nil, errf(400, "invalid", "Invalid value for field 'resource.rawDisk.source': want %sBUCKET/OBJECT", gs)
	}
	uefi := false
	for _, g := range im.GuestOsFeatures {
		uefi = uefi || g.Type == "UEFI_COMPATIBLE"
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(im.RawDisk.Source, gs), "/")
	obj, err := f.GCS.GetObject(bucket, key)
	if err != nil {
		return nil, errf(400, "invalid", "The resource '%s' was not found: %v", im.RawDisk.Source, err)
	}
	f.mu.Lock()
	if f.images[im.Name] != nil {
		f.mu.Unlock()
		return nil, errf(409, "alreadyExists", "The resource 'projects/%s/global/images/%s' already exists", Project, im.Name)
	}
	f.mu.Unlock()
	os.MkdirAll(filepath.Join(f.dir, "images"), 0o755)
	path := filepath.Join(f.dir, "images", im.Name+".raw")
	if err := extractDisk(obj.Content, path); err != nil {
		return nil, errf(400, "invalid", "Invalid image archive %s: %v", im.RawDisk.Source, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	im.Status = "READY"
	if !uefi {
		// Compute Engine would boot it with BIOS; the fake has only OVMF.
		im.Status = "FAILED"
	}
	im.CreationTimestamp = time.Now().Format(time.RFC3339Nano)
	im.LabelFingerprint = newID()
	im.SelfLink = f.ComputeURL + "projects/" + Project + "/global/images/" + im.Name
	f.images[im.Name] = im
	return f.op("images.insert", "insert", im.Name, ""), nil
}

// extractDisk writes the archive's disk.raw to path, skipping zero blocks.
func extractDisk(archive []byte, path string) error {
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			return fmt.Errorf("no disk.raw: %w", err)
		}
		if h.Name != "disk.raw" {
			continue
		}
		if h.Size%(1<<30) != 0 {
			return fmt.Errorf("disk.raw is %d bytes, not a whole number of GiB", h.Size)
		}
		out, err := os.Create(path)
		if err != nil {
			return err
		}
		defer out.Close()
		buf := make([]byte, 1<<16)
		var off int64
		for {
			n, err := io.ReadFull(tr, buf)
			if n > 0 {
				if !bytes.Equal(buf[:n], make([]byte, n)) {
					if _, werr := out.WriteAt(buf[:n], off); werr != nil {
						return werr
					}
				}
				off += int64(n)
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				return err
			}
		}
		return out.Truncate(h.Size)
	}
}

func (f *Fake) insertInstance(ci *compute.Instance, reqID string) (any, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if reqID != "" {
		if op := f.requests[reqID]; op != nil {
			return op, nil // a retried insert is the same insert
		}
	}
	if ci.Name == "" || len(ci.Name) > 63 || !regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`).MatchString(ci.Name) {
		return nil, errf(400, "invalid", "Invalid value for field 'resource.name': '%s'", ci.Name)
	}
	if f.instances[ci.Name] != nil {
		return nil, errf(409, "alreadyExists", "The resource 'projects/%s/zones/%s/instances/%s' already exists", Project, Zone, ci.Name)
	}
	mt := ci.MachineType[strings.LastIndex(ci.MachineType, "/")+1:]
	known := false
	for _, t := range f.o.MachineTypes {
		known = known || t == mt
	}
	if !known {
		return nil, errf(400, "invalid", "Invalid value for field 'resource.machineType': '%s'. Machine type with name '%s' does not exist in zone '%s'.", ci.MachineType, mt, Zone)
	}
	if len(ci.Disks) != 1 || ci.Disks[0].InitializeParams == nil {
		return nil, errf(400, "invalid", "fake: one boot disk from an image")
	}
	src := ci.Disks[0].InitializeParams.SourceImage
	im := f.images[src[strings.LastIndex(src, "/")+1:]]
	if im == nil || im.Status != "READY" {
		return nil, errf(404, "notFound", "The resource 'projects/%s/%s' was not found", Project, src)
	}
	op := f.op("instances.insert", "insert", ci.Name, Zone)
	if reqID != "" {
		f.requests[reqID] = op
	}
	if op.Error != nil {
		return op, nil // refused: no instance
	}
	if ci.Metadata != nil {
		for _, it := range ci.Metadata.Items {
			if it.Value != nil && len(*it.Value) > 256<<10 {
				return nil, errf(400, "invalid", "Invalid value for field 'resource.metadata': the value of metadata key '%s' exceeds 256 KB", it.Key)
			}
		}
	}
	f.nextAddr++
	in := &instance{Instance: ci, exited: make(chan struct{})}
	ci.Status = "PROVISIONING"
	ci.Id = uint64(time.Now().UnixNano())
	ci.CreationTimestamp = time.Now().Format(time.RFC3339Nano)
	addr := cloudfake.PublicAddr()
	for _, ni := range ci.NetworkInterfaces {
		ni.NetworkIP = fmt.Sprintf("10.128.0.%d", 2+f.nextAddr%250)
		for _, ac := range ni.AccessConfigs {
			ac.NatIP = addr
		}
	}
	in.dir = filepath.Join(f.dir, ci.Name)
	os.MkdirAll(in.dir, 0o755)
	in.console = filepath.Join(in.dir, "console.log")
	os.WriteFile(in.console, nil, 0o644)
	in.disk = filepath.Join(f.dir, "images", im.Name+".raw")
	if ci.Tags != nil {
		for _, fw := range f.firewalls {
			for _, tag := range fw.TargetTags {
				for _, it := range ci.Tags.Items {
					if tag != it {
						continue
					}
					for _, a := range fw.Allowed {
						for _, p := range a.Ports {
							if n, err := strconv.Atoi(p); err == nil {
								in.ports = append(in.ports, n)
							}
						}
					}
				}
			}
		}
	}
	f.instances[ci.Name] = in
	go f.boot(in, addr)
	return op, nil
}

func (f *Fake) boot(in *instance, addr string) {
	time.Sleep(100 * time.Millisecond)
	f.mu.Lock()
	if in.deleted {
		f.mu.Unlock()
		return
	}
	in.Status = "STAGING"
	f.mu.Unlock()
	cloudfake.Boot(&f.mu, f.o.Boot, in.console, "gcpfake: placeholder instance "+in.Name+" running (no QEMU)",
		func() error { return f.startQEMU(in, addr) },
		func() {
			if in.Status == "STAGING" {
				in.Status = "RUNNING"
			}
		},
		func(err error) { f.exited(in, err) })
}

func (f *Fake) startQEMU(in *instance, addr string) error {
	vm, err := cloudfake.Start(cloudfake.Spec{Name: "gcpfake: " + in.Name, Dir: in.dir, Console: in.console,
		Args: []string{
			// The boot disk on virtio-scsi, as on most machine types;
			// writes stay in the instance (snapshot=on), the image is
			// not changed.
			"-drive", "file=" + in.disk + ",format=raw,if=none,id=pd0,snapshot=on",
			"-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-hd,drive=pd0,bus=scsi0.0",
		},
		Net: &cloudfake.Net{Addr: addr, Forwards: in.ports, Metadata: cloudfake.GCEMetadata(metadataItems(in.Instance))}, Log: f.o.Log,
	}, func(err error) { f.exited(in, err) })
	if err != nil {
		return err
	}
	in.vm = vm
	return nil
}

// exited records the end of an instance's machine: TERMINATED (stopped).
func (f *Fake) exited(in *instance, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !cloudfake.MarkExited(in.exited) {
		return
	}
	in.Status = "TERMINATED"
	if err != nil {
		in.StatusMessage = err.Error()
		f.o.Log("gcpfake: %s: QEMU: %v", in.Name, err)
	}
}

func (f *Fake) kill(in *instance) {
	if in.vm != nil {
		in.vm.Kill()
	}
}

func (f *Fake) stopInstance(name string) (any, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.instances[name]
	if in == nil {
		return nil, errf(404, "notFound", "The resource 'projects/%s/zones/%s/instances/%s' was not found", Project, Zone, name)
	}
	switch in.Status {
	case "RUNNING", "STAGING", "PROVISIONING":
		in.Status = "STOPPING"
		in.stopAsked = true
		go f.powerdown(in, 90*time.Second)
	case "STOPPING":
		// Pressed again (a press before the guest's button driver
		// loaded is lost).
		if in.vm != nil {
			go in.vm.Powerdown()
		}
	}
	return f.op("instances.stop", "stop", name, Zone), nil
}

// powerdown presses the ACPI power button and, if the guest has not
// powered off within grace, stops the machine (Compute Engine does so
// after 90 s).
func (f *Fake) powerdown(in *instance, grace time.Duration) {
	if in.vm != nil {
		if err := in.vm.Powerdown(); err != nil {
			f.o.Log("gcpfake: %s: power button: %v", in.Name, err)
		}
	} else {
		f.exited(in, nil)
		return
	}
	select {
	case <-in.exited:
	case <-time.After(grace):
		f.kill(in)
	}
}

func (f *Fake) deleteInstance(name string) (any, *apiError) {
	f.mu.Lock()
	in := f.instances[name]
	if in == nil {
		f.mu.Unlock()
		return nil, errf(404, "notFound", "The resource 'projects/%s/zones/%s/instances/%s' was not found", Project, Zone, name)
	}
	in.deleted = true
	in.Status = "STOPPING"
	f.mu.Unlock()
	if in.vm != nil {
		f.kill(in)
	} else {
		f.exited(in, nil)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.instances, name)
	return f.op("instances.delete", "delete", name, Zone), nil
}

func (f *Fake) serialPort(name, startStr string) (any, *apiError) {
	f.mu.Lock()
	in := f.instances[name]
	f.mu.Unlock()
	if in == nil {
		return nil, errf(404, "notFound", "The resource 'projects/%s/zones/%s/instances/%s' was not found", Project, Zone, name)
	}
	start, _ := strconv.ParseInt(startStr, 10, 64)
	fh, err := os.Open(in.console)
	if err != nil {
		return nil, errf(500, "backendError", "%v", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, errf(500, "backendError", "%v", err)
	}
	size := st.Size()
	// The buffer holds the last SerialBuffer bytes: an older start is
	// served from the oldest one held.
	oldest := max(0, size-f.o.SerialBuffer)
	if start < oldest {
		start = oldest
	}
	if start > size {
		start = size
	}
	b := make([]byte, size-start)
	if _, err := fh.ReadAt(b, start); err != nil && err != io.EOF {
		return nil, errf(500, "backendError", "%v", err)
	}
	return &compute.SerialPortOutput{Contents: string(b), Start: start, Next: size}, nil
}

// metadataItems are an instance's metadata as its metadata server serves
// them.
func metadataItems(ci *compute.Instance) map[string]string {
	items := map[string]string{}
	if ci.Metadata != nil {
		for _, it := range ci.Metadata.Items {
			if it.Value != nil {
				items[it.Key] = *it.Value
			}
		}
	}
	return items
}
