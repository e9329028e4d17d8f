// Package awsfake is a local stand-in for the AWS services kitrun's AWS
// backend calls, for tests only: S3 (github.com/johannesboyne/gofakes3,
// in-process) and a small EC2 control plane speaking EC2's query API
// (form-encoded POST, XML answers, EC2's error format) that boots the
// imported disk with QEMU — q35 with OVMF, the disk on NVMe as on Nitro,
// a virtio NIC (not ENA) on user networking whose published ports are
// those the instance's security groups open, forwarded from a loopback
// address of the instance's own — and serves its serial console through
// GetConsoleOutput as EC2 does: a base64 snapshot of the last 64 KiB.
//
// The real SDK clients talk to it through endpoint overrides. Faults are
// injected per action: throttling (RequestLimitExceeded, which the SDK
// retries), failures with any error code, and S3 uploads cut midway.
//
// Only tests import this package.
package awsfake

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/cloud/cloudfake"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Bucket is the bucket the fake S3 starts with.
const Bucket = "kitrun-test"

// ConsoleWindow is how much console output GetConsoleOutput shows.
const ConsoleWindow = 64 << 10

// Options configure a fake.
type Options struct {
	Region string // default us-east-1
	// InstanceTypes the region offers (default t3.nano, t3.micro,
	// t3.small).
	InstanceTypes []string
	// Boot: instances boot their image with QEMU. Otherwise an instance
	// is a placeholder that runs (printing one console line) until it is
	// stopped or terminated: enough for the control-plane faults.
	Boot bool
	// PendingFor is how long an instance stays pending (default 200ms).
	PendingFor time.Duration
	// Log receives the fake's QEMU command lines and exits.
	Log func(format string, args ...any)
}

// Fake is a running fake of S3 and EC2.
type Fake struct {
	EC2URL, S3URL string
	Region        string
	S3            *s3mem.Backend

	o      Options
	dir    string
	ec2srv *httptest.Server
	s3srv  *httptest.Server

	mu        sync.Mutex
	throttle  map[string]int
	fail      map[string]string
	cutPuts   int
	puts      int
	calls     map[string]int
	tags      map[string]map[string]string
	tasks     map[string]*importTask
	snapshots map[string]*snapshot
	images    map[string]*amImage
	groups    map[string]*group
	instances map[string]*instance
	tokens    map[string]string // client token → instance
	closed    bool
}

type importTask struct {
	id, bucket, key, desc string
	snapshot              string
	status, message       string
	polls                 int
}

type snapshot struct {
	id, path string
	size     int64
	deleted  bool
}

type amImage struct {
	id, name, snapshot, arch, bootMode string
	created                            time.Time
	deregistered                       bool
}

type group struct {
	id, name string
	ports    []int
}

type instance struct {
	id, image, itype, token string
	groups                  []string
	addr                    string
	launched                time.Time
	state, reason           string
	terminateOnShutdown     bool
	stopAsked, termAsked    bool
	dir                     string
	vm                      *cloudfake.QEMU
	exited                  chan struct{}
	console                 string // the console file
	userData                []byte // nil: launched without
}

// Start starts the fake; it stops (and its QEMUs die) when the test ends.
func Start(t testing.TB, o Options) *Fake {
	t.Helper()
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if len(o.InstanceTypes) == 0 {
		o.InstanceTypes = []string{"t3.nano", "t3.micro", "t3.small"}
	}
	if o.PendingFor == 0 {
		o.PendingFor = 200 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = t.Logf
	}
	f := &Fake{
		o: o, Region: o.Region, dir: t.TempDir(),
		throttle: map[string]int{}, fail: map[string]string{}, calls: map[string]int{},
		tags: map[string]map[string]string{}, tasks: map[string]*importTask{}, snapshots: map[string]*snapshot{},
		images: map[string]*amImage{}, groups: map[string]*group{}, instances: map[string]*instance{},
		tokens: map[string]string{},
	}
	f.S3 = s3mem.New()
	if err := f.S3.CreateBucket(Bucket); err != nil {
		t.Fatal(err)
	}
	s3h := gofakes3.New(f.S3, gofakes3.WithAutoBucket(false)).Server()
	f.s3srv = httptest.NewServer(f.cutUploads(s3h))
	f.ec2srv = httptest.NewServer(http.HandlerFunc(f.serveEC2))
	f.EC2URL, f.S3URL = f.ec2srv.URL, f.s3srv.URL
	t.Cleanup(f.Close)
	return f
}

// Env points the AWS SDK's default chain at fake credentials and nothing
// else (no shared files, no instance metadata), for the test.
func (f *Fake) Env(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKEFAKE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(f.dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(f.dir, "no-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// BackendOptions are the AWS backend's options for this fake.
func (f *Fake) BackendOptions() map[string]string {
	return map[string]string{
		"region": f.Region, "ec2-endpoint": f.EC2URL, "s3-endpoint": f.S3URL, "bucket": Bucket,
		"emulated-nic": "virtio", "poll": "200ms", "max-backoff": "300ms", "ingress-cidr": "127.0.0.1/32",
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
		if in.vm != nil {
			in.vm.Kill()
			<-in.exited
		}
	}
	f.ec2srv.Close()
	f.s3srv.Close()
}

// Throttle makes the next n calls of action fail with RequestLimitExceeded.
func (f *Fake) Throttle(action string, n int) {
	f.mu.Lock()
	f.throttle[action] = n
	f.mu.Unlock()
}

// Fail makes every call of action fail with the error code ("" stops).
func (f *Fake) Fail(action, code string) {
	f.mu.Lock()
	if code == "" {
		delete(f.fail, action)
	} else {
		f.fail[action] = code
	}
	f.mu.Unlock()
}

// CutUploads cuts the next n S3 PUTs midway (the connection drops).
func (f *Fake) CutUploads(n int) {
	f.mu.Lock()
	f.cutPuts = n
	f.mu.Unlock()
}

// Calls is how many times action was called (throttled calls included).
func (f *Fake) Calls(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[action]
}

// Puts is how many S3 PUTs began.
func (f *Fake) Puts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts
}

// Resources lists what exists (not terminated, deregistered or deleted),
// as "kind id" lines, sorted; S3 objects included.
func (f *Fake) Resources() []string {
	f.mu.Lock()
	var out []string
	for _, in := range f.instances {
		if in.state != "terminated" {
			out = append(out, "instance "+in.id+" "+in.state)
		}
	}
	for _, im := range f.images {
		if !im.deregistered {
			out = append(out, "image "+im.id)
		}
	}
	for _, s := range f.snapshots {
		if !s.deleted {
			out = append(out, "snapshot "+s.id)
		}
	}
	for _, g := range f.groups {
		out = append(out, "security-group "+g.id)
	}
	f.mu.Unlock()
	if l, err := f.S3.ListBucket(Bucket, nil, gofakes3.ListBucketPage{}); err == nil {
		for _, o := range l.Contents {
			out = append(out, "object "+o.Key)
		}
	}
	sort.Strings(out)
	return out
}

// Tags are a resource's tags.
func (f *Fake) Tags(id string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]string{}
	for k, v := range f.tags[id] {
		m[k] = v
	}
	return m
}

// SetTag sets a tag behind the backend's back (to age a resource).
func (f *Fake) SetTag(id, key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tags[id] == nil {
		f.tags[id] = map[string]string{}
	}
	f.tags[id][key] = value
}

// Instances lists the instances' IDs and states, in launch order.
func (f *Fake) Instances() [][2]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ins []*instance
	for _, in := range f.instances {
		ins = append(ins, in)
	}
	sort.Slice(ins, func(i, j int) bool { return ins[i].launched.Before(ins[j].launched) })
	var out [][2]string
	for _, in := range ins {
		out = append(out, [2]string{in.id, in.state})
	}
	return out
}

// cutUploads drops the connection of a PUT midway, as a network failure
// does, while f.cutPuts says so.
func (f *Fake) cutUploads(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			f.mu.Lock()
			f.puts++
			cut := f.cutPuts > 0
			if cut {
				f.cutPuts--
			}
			f.mu.Unlock()
			if cut {
				io.CopyN(io.Discard, r.Body, max(r.ContentLength/2, 1))
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						c.Close()
						return
					}
				}
				panic(http.ErrAbortHandler)
			}
		}
		h.ServeHTTP(w, r)
	})
}

func newID(prefix string) string {
	var b [9]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])[:17]
}

// apiError is an EC2 error answer.
type apiError struct {
	status        int
	code, message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{status, code, fmt.Sprintf(format, args...)}
}

func (f *Fake) serveEC2(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !strings.Contains(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256") {
		writeError(w, errf(401, "AuthFailure", "AWS was not able to validate the provided access credentials"))
		return
	}
	action := r.Form.Get("Action")
	f.mu.Lock()
	f.calls[action]++
	if f.throttle[action] > 0 {
		f.throttle[action]--
		f.mu.Unlock()
		writeError(w, errf(503, "RequestLimitExceeded", "Request limit exceeded."))
		return
	}
	if code := f.fail[action]; code != "" {
		f.mu.Unlock()
		writeError(w, errf(400, code, "injected failure of %s", action))
		return
	}
	f.mu.Unlock()
	q := query(r.Form)
	var body string
	var err *apiError
	switch action {
	case "DescribeRegions":
		body = "<regionInfo><item><regionName>" + f.Region + "</regionName><regionEndpoint>" + esc(f.EC2URL) + "</regionEndpoint><optInStatus>opt-in-not-required</optInStatus></item></regionInfo>"
	case "DescribeInstanceTypeOfferings":
		body, err = f.describeOfferings(q)
	case "ImportSnapshot":
		body, err = f.importSnapshot(q)
	case "DescribeImportSnapshotTasks":
		body, err = f.describeImportTasks(q)
	case "CancelImportTask":
		body, err = f.cancelImport(q)
	case "RegisterImage":
		body, err = f.registerImage(q)
	case "DescribeImages":
		body, err = f.describeImages(q)
	case "DeregisterImage":
		body, err = f.deregisterImage(q)
	case "DescribeSnapshots":
		body, err = f.describeSnapshots(q)
	case "DeleteSnapshot":
		body, err = f.deleteSnapshot(q)
	case "CreateTags":
		body, err = f.createTags(q)
	case "CreateSecurityGroup":
		body, err = f.createGroup(q)
	case "AuthorizeSecurityGroupIngress":
		body, err = f.authorize(q)
	case "DescribeSecurityGroups":
		body, err = f.describeGroups(q)
	case "DeleteSecurityGroup":
		body, err = f.deleteGroup(q)
	case "RunInstances":
		body, err = f.runInstances(q)
	case "DescribeInstances":
		body, err = f.describeInstances(q)
	case "GetConsoleOutput":
		body, err = f.consoleOutput(q)
	case "StopInstances":
		body, err = f.stopInstances(q, false)
	case "TerminateInstances":
		body, err = f.stopInstances(q, true)
	default:
		err = errf(400, "InvalidAction", "The action %s is not valid for this web service.", action)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>%s</requestId>%s</%sResponse>`,
		action, newID("req-"), body, action)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
		esc(e.code), esc(e.message), newID("req-"))
}

func esc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// query reads EC2's flattened lists: Name.1, Name.2, … and
// Name.N.Field.
type query url.Values

func (q query) get(k string) string { return url.Values(q).Get(k) }

// list returns the values of k.1, k.2, … .
func (q query) list(k string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := q[k+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

// count is how many k.N.* groups there are.
func (q query) count(k string) int {
	n := 0
	for key := range q {
		if rest, ok := strings.CutPrefix(key, k+"."); ok {
			if i, err := strconv.Atoi(strings.SplitN(rest, ".", 2)[0]); err == nil && i > n {
				n = i
			}
		}
	}
	return n
}

// filters reads Filter.N.Name / Filter.N.Value.M.
func (q query) filters(k string) map[string][]string {
	m := map[string][]string{}
	for i := 1; i <= q.count(k); i++ {
		p := fmt.Sprintf("%s.%d.", k, i)
		m[q.get(p+"Name")] = q.list(p + "Value")
	}
	return m
}

// tagSpecs reads TagSpecification.N for a resource type.
func (q query) tagSpecs(resourceType string) map[string]string {
	tags := map[string]string{}
	for i := 1; i <= q.count("TagSpecification"); i++ {
		p := fmt.Sprintf("TagSpecification.%d.", i)
		if q.get(p+"ResourceType") != resourceType {
			continue
		}
		for j := 1; j <= q.count(p+"Tag"); j++ {
			tags[q.get(fmt.Sprintf("%sTag.%d.Key", p, j))] = q.get(fmt.Sprintf("%sTag.%d.Value", p, j))
		}
	}
	return tags
}

// matches says whether a resource's tags (and attributes) pass filters.
// Only the filters the backend uses are known; any other is an error, so
// that a test never passes on a filter the fake ignored.
func (f *Fake) matches(id string, filters map[string][]string, attrs map[string]string) (bool, *apiError) {
	tags := f.tags[id]
	for name, values := range filters {
		var have string
		var ok bool
		switch {
		case name == "tag-key":
			for _, v := range values {
				if _, ok = tags[v]; ok {
					break
				}
			}
			if !ok {
				return false, nil
			}
			continue
		case strings.HasPrefix(name, "tag:"):
			have, ok = tags[strings.TrimPrefix(name, "tag:")]
		default:
			have, ok = attrs[name]
			if !ok {
				return false, errf(400, "InvalidParameterValue", "The filter '%s' is invalid", name)
			}
		}
		if !ok || !contains(values, have) {
			return false, nil
		}
	}
	return true, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (f *Fake) tagSet(id string) string {
	var b strings.Builder
	b.WriteString("<tagSet>")
	keys := make([]string, 0, len(f.tags[id]))
	for k := range f.tags[id] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "<item><key>%s</key><value>%s</value></item>", esc(k), esc(f.tags[id][k]))
	}
	b.WriteString("</tagSet>")
	return b.String()
}

func (f *Fake) setTags(id string, tags map[string]string) {
	if len(tags) == 0 {
		return
	}
	if f.tags[id] == nil {
		f.tags[id] = map[string]string{}
	}
	for k, v := range tags {
		f.tags[id][k] = v
	}
}

func (f *Fake) describeOfferings(q query) (string, *apiError) {
	if lt := q.get("LocationType"); lt != "" && lt != "region" {
		return "", errf(400, "InvalidParameterValue", "fake: location type %s", lt)
	}
	want := q.filters("Filter")["instance-type"]
	var b strings.Builder
	b.WriteString("<instanceTypeOfferingSet>")
	for _, it := range f.o.InstanceTypes {
		if want == nil || contains(want, it) {
			fmt.Fprintf(&b, "<item><instanceType>%s</instanceType><locationType>region</locationType><location>%s</location></item>", it, f.Region)
		}
	}
	b.WriteString("</instanceTypeOfferingSet>")
	return b.String(), nil
}

func (f *Fake) importSnapshot(q query) (string, *apiError) {
	bucket, key := q.get("DiskContainer.UserBucket.S3Bucket"), q.get("DiskContainer.UserBucket.S3Key")
	if q.get("DiskContainer.Format") != "RAW" {
		return "", errf(400, "InvalidParameter", "fake: only RAW disks are imported")
	}
	t := &importTask{id: newID("import-snap-"), bucket: bucket, key: key, desc: q.get("Description"), status: "active"}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tasks[t.id] = t
	f.setTags(t.id, q.tagSpecs("import-snapshot-task"))
	return fmt.Sprintf("<importTaskId>%s</importTaskId><description>%s</description><snapshotTaskDetail><status>active</status><progress>0</progress></snapshotTaskDetail>%s",
		t.id, esc(t.desc), f.tagSet(t.id)), nil
}

// advance moves an import on: the first look finds it active, the second
// completed (the disk copied from S3 into a snapshot) or failed.
func (f *Fake) advance(t *importTask) {
	if t.status != "active" {
		return
	}
	t.polls++
	if t.polls < 2 {
		return
	}
	obj, err := f.S3.GetObject(t.bucket, t.key, nil)
	if err != nil {
		t.status, t.message = "deleted", fmt.Sprintf("ClientError: Disk validation failed [We were unable to read your import's S3 object s3://%s/%s]", t.bucket, t.key)
		return
	}
	defer obj.Contents.Close()
	s := &snapshot{id: newID("snap-")}
	s.path = filepath.Join(f.dir, s.id+".raw")
	out, err := os.Create(s.path)
	if err == nil {
		s.size, err = io.Copy(out, obj.Contents)
		out.Close()
	}
	if err != nil {
		t.status, t.message = "deleted", "ServerError: "+err.Error()
		return
	}
	f.snapshots[s.id] = s
	t.status, t.snapshot = "completed", s.id
}

func (f *Fake) describeImportTasks(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	b.WriteString("<importSnapshotTaskSet>")
	for _, id := range q.list("ImportTaskId") {
		t := f.tasks[id]
		if t == nil {
			return "", errf(400, "InvalidConversionTaskId.Malformed", "The import task %s does not exist", id)
		}
		f.advance(t)
		fmt.Fprintf(&b, "<item><importTaskId>%s</importTaskId><snapshotTaskDetail><status>%s</status><statusMessage>%s</statusMessage><snapshotId>%s</snapshotId><format>RAW</format></snapshotTaskDetail>%s</item>",
			t.id, t.status, esc(t.message), t.snapshot, f.tagSet(t.id))
	}
	b.WriteString("</importSnapshotTaskSet>")
	return b.String(), nil
}

func (f *Fake) cancelImport(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tasks[q.get("ImportTaskId")]
	if t == nil {
		return "", errf(400, "InvalidConversionTaskId", "no such task")
	}
	if t.status == "active" {
		t.status, t.message = "deleted", "cancelled"
	}
	return "<importTaskId>" + t.id + "</importTaskId><state>deleted</state>", nil
}

func (f *Fake) registerImage(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	snap := q.get("BlockDeviceMapping.1.Ebs.SnapshotId")
	if s := f.snapshots[snap]; s == nil || s.deleted {
		return "", errf(400, "InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", snap)
	}
	name := q.get("Name")
	for _, im := range f.images {
		if im.name == name && !im.deregistered {
			return "", errf(400, "InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI %s", name, im.id)
		}
	}
	im := &amImage{id: newID("ami-"), name: name, snapshot: snap, arch: q.get("Architecture"), bootMode: q.get("BootMode"), created: time.Now().UTC()}
	f.images[im.id] = im
	f.setTags(im.id, q.tagSpecs("image"))
	return "<imageId>" + im.id + "</imageId>", nil
}

func (f *Fake) describeImages(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	filters := q.filters("Filter")
	ids := q.list("ImageId")
	var b strings.Builder
	b.WriteString("<imagesSet>")
	for _, im := range f.images {
		if im.deregistered || (len(ids) > 0 && !contains(ids, im.id)) {
			continue
		}
		ok, err := f.matches(im.id, filters, map[string]string{"state": "available"})
		if err != nil {
			return "", err
		}
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "<item><imageId>%s</imageId><name>%s</name><imageState>available</imageState><architecture>%s</architecture><bootMode>%s</bootMode><creationDate>%s</creationDate><rootDeviceName>/dev/xvda</rootDeviceName><blockDeviceMapping><item><deviceName>/dev/xvda</deviceName><ebs><snapshotId>%s</snapshotId></ebs></item></blockDeviceMapping>%s</item>",
			im.id, esc(im.name), im.arch, im.bootMode, im.created.Format("2006-01-02T15:04:05.000Z"), im.snapshot, f.tagSet(im.id))
	}
	b.WriteString("</imagesSet>")
	return b.String(), nil
}

func (f *Fake) deregisterImage(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	im := f.images[q.get("ImageId")]
	if im == nil || im.deregistered {
		return "", errf(400, "InvalidAMIID.NotFound", "The image id '[%s]' does not exist", q.get("ImageId"))
	}
	im.deregistered = true
	return "<return>true</return>", nil
}

func (f *Fake) describeSnapshots(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	filters := q.filters("Filter")
	var b strings.Builder
	b.WriteString("<snapshotSet>")
	for _, s := range f.snapshots {
		if s.deleted {
			continue
		}
		ok, err := f.matches(s.id, filters, map[string]string{"status": "completed"})
		if err != nil {
			return "", err
		}
		if ok {
			fmt.Fprintf(&b, "<item><snapshotId>%s</snapshotId><status>completed</status><volumeSize>%d</volumeSize>%s</item>", s.id, (s.size+1<<30-1)>>30, f.tagSet(s.id))
		}
	}
	b.WriteString("</snapshotSet>")
	return b.String(), nil
}

func (f *Fake) deleteSnapshot(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.snapshots[q.get("SnapshotId")]
	if s == nil || s.deleted {
		return "", errf(400, "InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", q.get("SnapshotId"))
	}
	for _, im := range f.images {
		if im.snapshot == s.id && !im.deregistered {
			return "", errf(400, "InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s", s.id, im.id)
		}
	}
	s.deleted = true
	os.Remove(s.path)
	return "<return>true</return>", nil
}

func (f *Fake) exists(id string) bool {
	switch {
	case f.images[id] != nil:
		return !f.images[id].deregistered
	case f.snapshots[id] != nil:
		return !f.snapshots[id].deleted
	case f.instances[id] != nil, f.groups[id] != nil:
		return true
	}
	return false
}

func (f *Fake) createTags(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tags := map[string]string{}
	for i := 1; i <= q.count("Tag"); i++ {
		tags[q.get(fmt.Sprintf("Tag.%d.Key", i))] = q.get(fmt.Sprintf("Tag.%d.Value", i))
	}
	ids := q.list("ResourceId")
	for _, id := range ids {
		if !f.exists(id) {
			return "", errf(400, "InvalidID", "The ID '%s' is not valid", id)
		}
	}
	for _, id := range ids {
		f.setTags(id, tags)
	}
	return "<return>true</return>", nil
}

func (f *Fake) createGroup(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := q.get("GroupName")
	for _, g := range f.groups {
		if g.name == name {
			return "", errf(400, "InvalidGroup.Duplicate", "The security group '%s' already exists", name)
		}
	}
	g := &group{id: newID("sg-"), name: name}
	f.groups[g.id] = g
	f.setTags(g.id, q.tagSpecs("security-group"))
	return "<return>true</return><groupId>" + g.id + "</groupId>" + f.tagSet(g.id), nil
}

func (f *Fake) authorize(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.groups[q.get("GroupId")]
	if g == nil {
		return "", errf(400, "InvalidGroup.NotFound", "The security group '%s' does not exist", q.get("GroupId"))
	}
	for i := 1; i <= q.count("IpPermissions"); i++ {
		p := fmt.Sprintf("IpPermissions.%d.", i)
		from, _ := strconv.Atoi(q.get(p + "FromPort"))
		to, _ := strconv.Atoi(q.get(p + "ToPort"))
		if q.get(p+"IpProtocol") != "tcp" || from != to || from <= 0 {
			return "", errf(400, "InvalidParameterValue", "fake: only single TCP ports are forwarded")
		}
		g.ports = append(g.ports, from)
	}
	return "<return>true</return>", nil
}

func (f *Fake) describeGroups(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	filters := q.filters("Filter")
	var b strings.Builder
	b.WriteString("<securityGroupInfo>")
	for _, g := range f.groups {
		ok, err := f.matches(g.id, filters, nil)
		if err != nil {
			return "", err
		}
		if ok {
			fmt.Fprintf(&b, "<item><groupId>%s</groupId><groupName>%s</groupName>%s</item>", g.id, esc(g.name), f.tagSet(g.id))
		}
	}
	b.WriteString("</securityGroupInfo>")
	return b.String(), nil
}

func (f *Fake) deleteGroup(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.groups[q.get("GroupId")]
	if g == nil {
		return "", errf(400, "InvalidGroup.NotFound", "The security group '%s' does not exist", q.get("GroupId"))
	}
	for _, in := range f.instances {
		if in.state != "terminated" && contains(in.groups, g.id) {
			return "", errf(400, "DependencyViolation", "resource %s has a dependent object", g.id)
		}
	}
	delete(f.groups, g.id)
	return "<return>true</return>", nil
}

func (f *Fake) runInstances(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return "", errf(503, "Unavailable", "fake closed")
	}
	if tok := q.get("ClientToken"); tok != "" {
		if id, ok := f.tokens[tok]; ok {
			// Idempotent: a retried launch is the same launch.
			return f.reservationXML(f.instances[id]), nil
		}
	}
	it := q.get("InstanceType")
	if !contains(f.o.InstanceTypes, it) {
		return "", errf(400, "Unsupported", "Your requested instance type (%s) is not supported in your requested Availability Zone (%sa).", it, f.Region)
	}
	im := f.images[q.get("ImageId")]
	if im == nil || im.deregistered {
		return "", errf(400, "InvalidAMIID.NotFound", "The image id '[%s]' does not exist", q.get("ImageId"))
	}
	if q.get("MinCount") != "1" || q.get("MaxCount") != "1" {
		return "", errf(400, "InvalidParameterValue", "fake: one instance at a time")
	}
	groups := q.list("SecurityGroupId")
	for _, g := range groups {
		if f.groups[g] == nil {
			return "", errf(400, "InvalidGroup.NotFound", "The security group '%s' does not exist", g)
		}
	}
	var userData []byte
	if ud, ok := q["UserData"]; ok {
		// EC2 takes user data base64-encoded and serves it decoded.
		var err error
		if userData, err = base64.StdEncoding.DecodeString(ud[0]); err != nil {
			return "", errf(400, "InvalidParameterValue", "Invalid BASE64 encoding of user data.")
		}
		if len(userData) > 16<<10 {
			return "", errf(400, "InvalidParameterValue", "User data is limited to 16384 bytes")
		}
	}
	in := &instance{userData: userData,
		id: newID("i-"), image: im.id, itype: it, token: q.get("ClientToken"), groups: groups,
		addr:     cloudfake.PublicAddr(),
		launched: time.Now(), state: "pending",
		terminateOnShutdown: q.get("InstanceInitiatedShutdownBehavior") == "terminate",
		exited:              make(chan struct{}),
	}
	in.dir = filepath.Join(f.dir, in.id)
	os.MkdirAll(in.dir, 0o755)
	in.console = filepath.Join(in.dir, "console.log")
	os.WriteFile(in.console, nil, 0o644)
	f.instances[in.id] = in
	if in.token != "" {
		f.tokens[in.token] = in.id
	}
	f.setTags(in.id, q.tagSpecs("instance"))
	var ports []int
	for _, g := range groups {
		ports = append(ports, f.groups[g].ports...)
	}
	snap := f.snapshots[im.snapshot]
	go f.boot(in, snap, ports)
	return f.reservationXML(in), nil
}

func (f *Fake) instanceXML(in *instance) string {
	pub := ""
	if in.state == "running" || in.state == "stopping" {
		pub = "<ipAddress>" + in.addr + "</ipAddress>"
	}
	reason := ""
	if in.reason != "" {
		reason = "<stateReason><code>" + esc(in.reason) + "</code><message>" + esc(in.reason) + "</message></stateReason>"
	}
	codes := map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
	var groups strings.Builder
	for _, g := range in.groups {
		fmt.Fprintf(&groups, "<item><groupId>%s</groupId></item>", g)
	}
	return fmt.Sprintf("<item><instanceId>%s</instanceId><imageId>%s</imageId><instanceType>%s</instanceType><instanceState><code>%d</code><name>%s</name></instanceState>%s<privateIpAddress>%s</privateIpAddress>%s<launchTime>%s</launchTime><groupSet>%s</groupSet>%s</item>",
		in.id, in.image, in.itype, codes[in.state], in.state, reason, in.addr, pub, in.launched.UTC().Format("2006-01-02T15:04:05.000Z"), groups.String(), f.tagSet(in.id))
}

func (f *Fake) reservationXML(in *instance) string {
	return "<reservationId>r-" + in.id[2:] + "</reservationId><ownerId>123456789012</ownerId><instancesSet>" + f.instanceXML(in) + "</instancesSet>"
}

func (f *Fake) describeInstances(q query) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := q.list("InstanceId")
	for _, id := range ids {
		if !strings.HasPrefix(id, "i-") {
			return "", errf(400, "InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
		}
		if f.instances[id] == nil {
			return "", errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
	}
	filters := q.filters("Filter")
	var b strings.Builder
	b.WriteString("<reservationSet>")
	for _, in := range f.instances {
		if len(ids) > 0 && !contains(ids, in.id) {
			continue
		}
		ok, err := f.matches(in.id, filters, map[string]string{"instance-state-name": in.state})
		if err != nil {
			return "", err
		}
		if ok {
			b.WriteString("<item>" + f.reservationXML(in) + "</item>")
		}
	}
	b.WriteString("</reservationSet>")
	return b.String(), nil
}

func (f *Fake) consoleOutput(q query) (string, *apiError) {
	f.mu.Lock()
	in := f.instances[q.get("InstanceId")]
	f.mu.Unlock()
	if in == nil {
		return "", errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", q.get("InstanceId"))
	}
	if q.get("Latest") != "true" {
		return "", errf(400, "InvalidParameterValue", "fake: only the latest output is served (Latest=true)")
	}
	b, _ := readTail(in.console, ConsoleWindow)
	return fmt.Sprintf("<instanceId>%s</instanceId><timestamp>%s</timestamp><output>%s</output>",
		in.id, time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), base64.StdEncoding.EncodeToString(b)), nil
}

func readTail(path string, n int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	off := max(0, st.Size()-n)
	b := make([]byte, st.Size()-off)
	_, err = fh.ReadAt(b, off)
	if err == io.EOF {
		err = nil
	}
	return b, err
}

func (f *Fake) stopInstances(q query, terminate bool) (string, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := q.list("InstanceId")
	var b strings.Builder
	b.WriteString("<instancesSet>")
	for _, id := range ids {
		in := f.instances[id]
		if in == nil {
			return "", errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
		prev := in.state
		switch {
		case terminate && in.state != "terminated":
			in.termAsked = true
			if in.state == "stopped" {
				in.state, in.reason = "terminated", "Client.UserInitiatedShutdown: User initiated shutdown"
			} else {
				in.state = "shutting-down"
				in.reason = "Client.UserInitiatedShutdown: User initiated shutdown"
				go f.powerdown(in, 3*time.Second)
			}
		case !terminate && (in.state == "running" || in.state == "pending"):
			in.stopAsked = true
			in.state = "stopping"
			go f.powerdown(in, 30*time.Second)
		case !terminate && in.state == "stopping":
			// Pressed again while stopping: the button is pressed
			// again (a press before the guest's button driver loaded
			// is lost). Whether EC2 re-signals a stopping instance is
			// not documented; it forces the stop after a timeout.
			if in.vm != nil {
				go in.vm.Powerdown()
			}
		case !terminate && in.state == "stopped":
		case !terminate:
			return "", errf(400, "IncorrectInstanceState", "The instance '%s' is not in a state from which it can be stopped.", id)
		}
		fmt.Fprintf(&b, "<item><instanceId>%s</instanceId><previousState><name>%s</name></previousState><currentState><name>%s</name></currentState></item>", id, prev, in.state)
	}
	b.WriteString("</instancesSet>")
	return b.String(), nil
}

// powerdown presses the instance's ACPI power button and, if the guest
// has not powered off within grace, ends it (EC2 forces a stop or a
// termination after a while too).
func (f *Fake) powerdown(in *instance, grace time.Duration) {
	if in.vm != nil {
		if err := in.vm.Powerdown(); err != nil {
			f.o.Log("awsfake: %s: power button: %v", in.id, err)
		}
	} else {
		// A placeholder instance powers off at once.
		f.exited(in, nil)
		return
	}
	select {
	case <-in.exited:
	case <-time.After(grace):
		in.vm.Kill()
	}
}

// exited records the end of an instance's machine.
func (f *Fake) exited(in *instance, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !cloudfake.MarkExited(in.exited) {
		return
	}
	switch {
	case in.termAsked:
		in.state = "terminated"
	case in.stopAsked:
		in.state, in.reason = "stopped", "Client.UserInitiatedShutdown: User initiated shutdown"
	case in.terminateOnShutdown:
		in.state, in.reason = "terminated", "Client.InstanceInitiatedShutdown: Instance initiated shutdown"
	default:
		in.state, in.reason = "stopped", "Client.InstanceInitiatedShutdown: Instance initiated shutdown"
	}
	if err != nil {
		f.o.Log("awsfake: %s: QEMU: %v", in.id, err)
	}
}

// boot runs the instance: QEMU with the snapshot's disk, or a placeholder.
func (f *Fake) boot(in *instance, snap *snapshot, ports []int) {
	time.Sleep(f.o.PendingFor)
	cloudfake.Boot(&f.mu, f.o.Boot, in.console, "awsfake: placeholder instance "+in.id+" running (no QEMU)",
		func() error { return f.startQEMU(in, snap, ports) },
		func() {
			if in.state == "pending" {
				in.state = "running"
			}
		},
		func(err error) { f.exited(in, err) })
}

func (f *Fake) startQEMU(in *instance, snap *snapshot, ports []int) error {
	vm, err := cloudfake.Start(cloudfake.Spec{Name: "awsfake: " + in.id, Dir: in.dir, Console: in.console,
		Args: []string{
			// The EBS volume: NVMe, as on Nitro; writes stay in the
			// instance (snapshot=on), the snapshot is not changed.
			"-drive", "file=" + snap.path + ",format=raw,if=none,id=ebs0,snapshot=on",
			"-device", "nvme,drive=ebs0,serial=vol" + in.id[2:12],
		},
		Net: &cloudfake.Net{Addr: in.addr, Forwards: ports, Metadata: cloudfake.AWSMetadata(in.userData)}, Log: f.o.Log,
	}, func(err error) { f.exited(in, err) })
	if err != nil {
		return err
	}
	in.vm = vm
	return nil
}
