// Package azurefake is a local stand-in for the Azure services kitrun's
// Azure backend calls, for tests only: Blob Storage is Azurite (see
// azurite.go), and a small Azure Resource Manager (JSON over HTTP, ARM's error format, a
// long-running VM creation polled through its provisioningState, a VM's
// deletion through an Azure-AsyncOperation) for
// managed disks, public IPs, network security groups, NICs and VMs, which
// BOOTS THE VM's DISK WITH QEMU — q35 with OVMF, the VHD read as QEMU's
// `vpc`, a virtio NIC (not Hyper-V's netvsc: images are built with
// hardware=qemu) on user networking whose DHCP server kitinit leases its
// address from, with host forwards, from the public IP's own loopback
// address, for the ports the NIC's security group allows — and serves the
// serial console as the boot diagnostics log (a SAS-style URI that the
// fake ARM itself serves): everything the guest wrote so far. A managed
// disk imported from a blob is read from Azurite.
//
// Only tests import this package.
package azurefake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
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
)

// Fixed names of the fake's world.
const (
	Subscription  = "00000000-0000-0000-0000-00000000f4ce"
	ResourceGroup = "kitrun-test"
	Location      = "westeurope"
	Container     = "kitrun"
)

// Subnet is the subnet NICs join (the fake does not check it).
var Subnet = "/subscriptions/" + Subscription + "/resourceGroups/" + ResourceGroup + "/providers/Microsoft.Network/virtualNetworks/net/subnets/default"

// Options configure a fake.
type Options struct {
	// Boot: VMs boot their disk with QEMU. Otherwise a VM is a
	// placeholder that runs (one console line) until it is powered off.
	Boot bool
	// Sizes the location offers (default Standard_B1s, Standard_B2s).
	Sizes []string
	Log   func(format string, args ...any)
}

// Fake is a running fake of Blob Storage and ARM.
type Fake struct {
	ARMURL, BlobURL string

	o    Options
	dir  string
	arm  *httptest.Server
	blob *azurite

	mu        sync.Mutex
	puts      int // page blobs created
	pages     int // Put Page calls
	res       map[string]map[string]any
	files     map[string]string // disk ID → file
	vms       map[string]*vm
	calls     map[string]int
	throttle  map[string]int
	fail      map[string]failure
	createdAt map[string]int
	ops       map[string]int // long-running operation → polls so far
}

type failure struct {
	status int
	code   string
	n      int
}

type vm struct {
	id, name, addr string
	state          string // starting, running, stopping, stopped
	dir, console   string
	qemu           *cloudfake.QEMU
	userData       string // base64, as created
	exited         chan struct{}
	polls          int
}

// Start starts the fake; it stops (and its QEMUs die) when the test ends.
func Start(t testing.TB, o Options) *Fake {
	t.Helper()
	if len(o.Sizes) == 0 {
		o.Sizes = []string{"Standard_B1s", "Standard_B2s"}
	}
	if o.Log == nil {
		o.Log = t.Logf
	}
	f := &Fake{o: o, dir: t.TempDir(), res: map[string]map[string]any{},
		files: map[string]string{}, vms: map[string]*vm{}, calls: map[string]int{}, throttle: map[string]int{},
		fail: map[string]failure{}, createdAt: map[string]int{}, ops: map[string]int{}}
	f.blob = startAzurite(t, f)
	f.arm = httptest.NewServer(http.HandlerFunc(f.serveARM))
	f.ARMURL, f.BlobURL = f.arm.URL, f.blob.url
	t.Cleanup(f.Close)
	return f
}

// Env clears the environment DefaultAzureCredential reads, for the test.
func (f *Fake) Env(t testing.TB) {
	for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "MSI_ENDPOINT"} {
		t.Setenv(k, "")
	}
	t.Setenv("AZURE_CONFIG_DIR", filepath.Join(f.dir, "no-az"))
}

// BackendOptions are the Azure backend's options for this fake.
func (f *Fake) BackendOptions() map[string]string {
	return map[string]string{
		"subscription": Subscription, "resource-group": ResourceGroup, "location": Location,
		"arm-endpoint": f.ARMURL, "blob-endpoint": f.BlobURL, "blob-ca": f.blob.caPath, "fake-credential": "true", "subnet": Subnet,
		"hardware": "qemu", "poll": "200ms", "ingress-cidr": "127.0.0.1/32",
	}
}

// Close stops the servers and kills every VM's QEMU.
func (f *Fake) Close() {
	f.mu.Lock()
	var all []*vm
	for _, v := range f.vms {
		all = append(all, v)
	}
	f.mu.Unlock()
	for _, v := range all {
		if v.qemu != nil {
			v.qemu.Kill()
			<-v.exited
		}
	}
	f.arm.Close()
}

// Throttle answers the next n calls of op ("PUT virtualMachines", "GET
// disks", …: the method and the resource type) with 429 and Retry-After.
func (f *Fake) Throttle(op string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle[op] = n
}

// Fail answers the next n calls of op with an ARM error.
func (f *Fake) Fail(op string, status int, code string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[op] = failure{status: status, code: code, n: n}
}

// Calls counts the calls of op.
func (f *Fake) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Uploads counts the page blobs created and the pages written.
func (f *Fake) Uploads() (blobs, pages int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts, f.pages
}

// Resources lists what exists: ARM resources ("type/name") and blobs.
func (f *Fake) Resources() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.res {
		out = append(out, fmt.Sprint(r["type"], "/", r["name"]))
	}
	f.mu.Unlock()
	names, err := f.blob.list()
	if err != nil {
		out = append(out, "blob listing failed: "+err.Error())
	}
	for _, n := range names {
		out = append(out, "blob "+Container+"/"+n)
	}
	f.mu.Lock()
	sort.Strings(out)
	return out
}

// SetTag sets a tag on every resource whose name starts with prefix.
func (f *Fake) SetTag(prefix, key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.res {
		if strings.HasPrefix(fmt.Sprint(r["name"]), prefix) {
			tags, _ := r["tags"].(map[string]any)
			if tags == nil {
				tags = map[string]any{}
				r["tags"] = tags
			}
			tags[key] = value
		}
	}
}

// serveSerial serves a VM's serial log (the boot diagnostics blob).
func (f *Fake) serveSerial(w http.ResponseWriter, r *http.Request, name string) {
	f.mu.Lock()
	var v *vm
	for _, x := range f.vms {
		if x.name+".serialconsole.log" == name {
			v = x
		}
	}
	f.mu.Unlock()
	if v == nil || r.URL.Query().Get("sig") == "" {
		http.Error(w, "BlobNotFound", 404)
		return
	}
	b, err := os.ReadFile(v.console)
	if err != nil {
		http.Error(w, "BlobNotFound", 404)
		return
	}
	w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	w.Write(b)
}

// --- ARM ---

type armErr struct {
	status        int
	code, message string
}

func armError(w http.ResponseWriter, e *armErr) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-ms-error-code", e.code)
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": e.code, "message": e.message}})
}

func errf(status int, code, format string, args ...any) *armErr {
	return &armErr{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *Fake) serveARM(w http.ResponseWriter, r *http.Request) {
	if name, ok := strings.CutPrefix(r.URL.Path, "/bootdiagnostics/"); ok {
		// A SAS URI: no bearer token.
		f.serveSerial(w, r, name)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		armError(w, errf(401, "AuthenticationFailed", "no bearer token"))
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// /subscriptions/S/providers/Microsoft.Compute/locations/L/vmSizes
	if len(parts) == 7 && parts[0] == "subscriptions" && parts[2] == "providers" && parts[6] == "vmSizes" {
		f.count(r.Method + " vmSizes")
		var v []any
		for _, s := range f.o.Sizes {
			v = append(v, map[string]any{"name": s, "numberOfCores": 1, "memoryInMB": 1024})
		}
		writeJSON(w, 200, map[string]any{"value": v})
		return
	}
	// /subscriptions/S/providers/Microsoft.Compute/locations/L/operations/ID:
	// a long-running operation's status (Azure-AsyncOperation).
	if len(parts) == 8 && parts[0] == "subscriptions" && parts[2] == "providers" && parts[6] == "operations" {
		f.count("GET operations")
		f.mu.Lock()
		n, ok := f.ops[parts[7]]
		if ok {
			f.ops[parts[7]] = n + 1
		}
		f.mu.Unlock()
		switch {
		case !ok:
			armError(w, errf(404, "NotFound", "no operation %s", parts[7]))
		case n == 0:
			writeJSON(w, 200, map[string]any{"name": parts[7], "status": "InProgress"})
		default:
			writeJSON(w, 200, map[string]any{"name": parts[7], "status": "Succeeded"})
		}
		return
	}
	// /subscriptions/S/resourceGroups/RG/providers/NS/TYPE[/NAME[/ACTION]]
	if len(parts) < 7 || parts[0] != "subscriptions" || !strings.EqualFold(parts[2], "resourceGroups") || parts[4] != "providers" {
		armError(w, errf(404, "InvalidResourceType", "no route %s %s", r.Method, r.URL.Path))
		return
	}
	if parts[3] != ResourceGroup {
		armError(w, errf(404, "ResourceGroupNotFound", "Resource group '%s' could not be found.", parts[3]))
		return
	}
	typ := parts[6]
	op := r.Method + " " + typ
	if len(parts) == 9 {
		op += "/" + parts[8]
	}
	if e := f.count(op); e != nil {
		if e.status == 429 {
			w.Header().Set("Retry-After", "1")
		}
		armError(w, e)
		return
	}
	base := "/" + strings.Join(parts[:7], "/")
	switch {
	case len(parts) == 7 && r.Method == http.MethodGet:
		f.mu.Lock()
		var v []any
		for id, res := range f.res {
			if strings.HasPrefix(id, strings.ToLower(base)+"/") {
				v = append(v, res)
			}
		}
		f.mu.Unlock()
		writeJSON(w, 200, map[string]any{"value": v})
	case len(parts) == 8:
		id := base + "/" + parts[7]
		switch r.Method {
		case http.MethodGet:
			f.mu.Lock()
			res := f.res[strings.ToLower(id)]
			if v := f.vms[strings.ToLower(id)]; v != nil && res != nil {
				props := res["properties"].(map[string]any)
				if v.state != "starting" {
					props["provisioningState"] = "Succeeded"
				}
			}
			out, _ := json.Marshal(res)
			f.mu.Unlock()
			if res == nil {
				armError(w, errf(404, "ResourceNotFound", "The Resource '%s' was not found.", id))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(out)
		case http.MethodPut:
			var body map[string]any
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				armError(w, errf(400, "InvalidRequestContent", "%v", err))
				return
			}
			status, res, e := f.put(typ, id, parts[7], body)
			if e != nil {
				armError(w, e)
				return
			}
			writeJSON(w, status, res)
		case http.MethodPatch:
			var body map[string]any
			json.NewDecoder(r.Body).Decode(&body)
			f.mu.Lock()
			res := f.res[strings.ToLower(id)]
			if res != nil && body["tags"] != nil {
				res["tags"] = body["tags"]
			}
			out, _ := json.Marshal(res)
			f.mu.Unlock()
			if res == nil {
				armError(w, errf(404, "ResourceNotFound", "The Resource '%s' was not found.", id))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(out)
		case http.MethodDelete:
			if e := f.delete(id); e != nil {
				armError(w, e)
				return
			}
			if typ == "virtualMachines" {
				// A VM's deletion is long-running, as on Azure: 202
				// and an operation to poll.
				op := strconv.FormatInt(time.Now().UnixNano(), 36)
				f.mu.Lock()
				f.ops[op] = 0
				f.mu.Unlock()
				w.Header().Set("Azure-AsyncOperation", fmt.Sprintf("%s/subscriptions/%s/providers/Microsoft.Compute/locations/%s/operations/%s", f.ARMURL, Subscription, Location, op))
				w.WriteHeader(202)
				return
			}
			w.WriteHeader(200)
		default:
			armError(w, errf(405, "MethodNotAllowed", "%s", r.Method))
		}
	case len(parts) == 9:
		id := strings.ToLower(base + "/" + parts[7])
		f.mu.Lock()
		v := f.vms[id]
		f.mu.Unlock()
		if typ != "virtualMachines" || v == nil {
			armError(w, errf(404, "ResourceNotFound", "The Resource '%s' was not found.", id))
			return
		}
		switch parts[8] {
		case "instanceView":
			f.mu.Lock()
			st := v.state
			f.mu.Unlock()
			writeJSON(w, 200, map[string]any{"statuses": []any{
				map[string]any{"code": "ProvisioningState/succeeded"}, map[string]any{"code": "PowerState/" + st}}})
		case "powerOff":
			f.powerOff(v, r.URL.Query().Get("skipShutdown") == "true")
			w.WriteHeader(200)
		case "retrieveBootDiagnosticsData":
			u := f.ARMURL + "/bootdiagnostics/" + url.PathEscape(v.name) + ".serialconsole.log?sig=fake"
			writeJSON(w, 200, map[string]any{"serialConsoleLogBlobUri": u, "consoleScreenshotBlobUri": ""})
		default:
			armError(w, errf(404, "InvalidResourceType", "no action %s", parts[8]))
		}
	default:
		armError(w, errf(404, "InvalidResourceType", "no route %s %s", r.Method, r.URL.Path))
	}
}

// count counts a call and returns an injected fault, if any.
func (f *Fake) count(op string) *armErr {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if n := f.throttle[op]; n > 0 {
		f.throttle[op] = n - 1
		return errf(429, "TooManyRequests", "throttled (%s)", op)
	}
	if fl, ok := f.fail[op]; ok && fl.n > 0 {
		fl.n--
		f.fail[op] = fl
		return errf(fl.status, fl.code, "injected failure of %s", op)
	}
	return nil
}

func props(m map[string]any) map[string]any {
	p, _ := m["properties"].(map[string]any)
	if p == nil {
		p = map[string]any{}
		m["properties"] = p
	}
	return p
}

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	s, _ := cur.(string)
	return s
}

func (f *Fake) put(typ, id, name string, body map[string]any) (int, map[string]any, *armErr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	lid := strings.ToLower(id)
	body["id"], body["name"] = id, name
	p := props(body)
	p["provisioningState"] = "Succeeded"
	switch typ {
	case "disks":
		body["type"] = "Microsoft.Compute/disks"
		cd, _ := p["creationData"].(map[string]any)
		switch str(cd, "createOption") {
		case "Import":
			u, err := url.Parse(str(cd, "sourceUri"))
			key := ""
			if err == nil {
				key = strings.TrimPrefix(u.Path, "/"+AzuriteAccount+"/")
			}
			b, err := f.blob.read(key)
			if err != nil {
				return 0, nil, errf(400, "InvalidParameter", "the source blob %s cannot be read: %v", str(cd, "sourceUri"), err)
			}
			if len(b) < 512 || string(b[len(b)-512:len(b)-504]) != "conectix" {
				return 0, nil, errf(400, "InvalidParameter", "the source blob is not a fixed VHD (no footer)")
			}
			path := filepath.Join(f.dir, name+".vhd")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				return 0, nil, errf(500, "InternalError", "%v", err)
			}
			f.files[lid] = path
			p["diskSizeGB"] = (len(b) + (1 << 30) - 1) >> 30
		case "Copy":
			src := strings.ToLower(str(cd, "sourceResourceId"))
			path, ok := f.files[src]
			if !ok {
				return 0, nil, errf(404, "NotFound", "source disk %s not found", str(cd, "sourceResourceId"))
			}
			f.files[lid] = path
		default:
			return 0, nil, errf(400, "InvalidParameter", "createOption %q is not supported by the fake", str(cd, "createOption"))
		}
		p["diskState"] = "Unattached"
	case "publicIPAddresses":
		body["type"] = "Microsoft.Network/publicIPAddresses"
		p["ipAddress"] = cloudfake.PublicAddr()
	case "networkSecurityGroups":
		body["type"] = "Microsoft.Network/networkSecurityGroups"
	case "networkInterfaces":
		body["type"] = "Microsoft.Network/networkInterfaces"
	case "virtualMachines":
		body["type"] = "Microsoft.Compute/virtualMachines"
		if _, ok := f.vms[lid]; ok {
			return 0, nil, errf(409, "Conflict", "the fake does not update VMs")
		}
		size := str(body, "properties", "hardwareProfile", "vmSize")
		okSize := false
		for _, s := range f.o.Sizes {
			okSize = okSize || s == size
		}
		if !okSize {
			return 0, nil, errf(409, "SkuNotAvailable", "The requested VM size '%s' is currently not available in location '%s'.", size, Location)
		}
		disk := strings.ToLower(str(body, "properties", "storageProfile", "osDisk", "managedDisk", "id"))
		file, ok := f.files[disk]
		if !ok {
			return 0, nil, errf(404, "NotFound", "OS disk %s not found", disk)
		}
		nics, _ := p["networkProfile"].(map[string]any)["networkInterfaces"].([]any)
		var addr string
		var ports []int
		for _, n := range nics {
			nic := f.res[strings.ToLower(str(n.(map[string]any), "id"))]
			if nic == nil {
				return 0, nil, errf(404, "NotFound", "NIC %s not found", str(n.(map[string]any), "id"))
			}
			nsg := f.res[strings.ToLower(str(nic, "properties", "networkSecurityGroup", "id"))]
			if nsg != nil {
				rules, _ := props(nsg)["securityRules"].([]any)
				for _, r := range rules {
					if pt, err := strconv.Atoi(str(r.(map[string]any), "properties", "destinationPortRange")); err == nil {
						ports = append(ports, pt)
					}
				}
			}
			cfgs, _ := props(nic)["ipConfigurations"].([]any)
			for _, c := range cfgs {
				ip := f.res[strings.ToLower(str(c.(map[string]any), "properties", "publicIPAddress", "id"))]
				if ip != nil {
					addr = str(ip, "properties", "ipAddress")
				}
			}
		}
		if addr == "" {
			addr = "127.0.0.1"
		}
		// userData: base64, at most 64 KiB; IMDS serves it, and ARM
		// shows it only with $expand=userData (which the fake lacks).
		userData := str(body, "properties", "userData")
		if _, err := base64.StdEncoding.DecodeString(userData); err != nil || len(userData) > 64<<10 {
			return 0, nil, errf(400, "InvalidParameter", "The value of parameter userData is invalid: it must be base64 and at most 64 KB.")
		}
		delete(p, "userData")
		dir := filepath.Join(f.dir, name)
		os.MkdirAll(dir, 0o755)
		v := &vm{id: lid, name: name, addr: addr, state: "starting", dir: dir, console: filepath.Join(dir, "serial.log"), exited: make(chan struct{}), userData: userData}
		os.WriteFile(v.console, nil, 0o644)
		f.vms[lid] = v
		p["provisioningState"] = "Creating"
		p["vmId"] = name
		go f.boot(v, file, ports)
		f.res[lid] = body
		return 201, body, nil
	default:
		return 0, nil, errf(400, "InvalidResourceType", "the fake has no %s", typ)
	}
	_, existed := f.res[lid]
	f.res[lid] = body
	if existed || typ == "disks" { // disks answer 200 or 202, never 201
		return 200, body, nil
	}
	return 201, body, nil
}

func (f *Fake) delete(id string) *armErr {
	f.mu.Lock()
	lid := strings.ToLower(id)
	res, ok := f.res[lid]
	if !ok {
		f.mu.Unlock()
		return errf(404, "ResourceNotFound", "The Resource '%s' was not found.", id)
	}
	// What a VM uses cannot be deleted while it exists.
	for vid := range f.vms {
		vres := f.res[vid]
		b, _ := json.Marshal(vres)
		if vid != lid && strings.Contains(strings.ToLower(string(b)), "\""+lid+"\"") {
			f.mu.Unlock()
			return errf(400, "InUseByVirtualMachine", "%s is in use by %s", id, vid)
		}
	}
	_ = res
	delete(f.res, lid)
	delete(f.files, lid)
	v := f.vms[lid]
	delete(f.vms, lid)
	f.mu.Unlock()
	if v != nil && v.qemu != nil {
		v.qemu.Kill()
		<-v.exited
	}
	return nil
}

func (f *Fake) powerOff(v *vm, skip bool) {
	f.mu.Lock()
	if v.state == "stopped" {
		f.mu.Unlock()
		return
	}
	if v.state != "stopping" || skip {
		v.state = "stopping"
	}
	f.mu.Unlock()
	if v.qemu == nil {
		f.exited(v, nil)
		return
	}
	if skip {
		v.qemu.Kill()
		<-v.exited
		return
	}
	go func() {
		if err := v.qemu.Powerdown(); err != nil {
			f.o.Log("azurefake: %s: power button: %v", v.name, err)
		}
		select {
		case <-v.exited:
		case <-time.After(60 * time.Second):
			v.qemu.Kill()
		}
	}()
}

func (f *Fake) exited(v *vm, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !cloudfake.MarkExited(v.exited) {
		return
	}
	v.state = "stopped"
	if err != nil {
		f.o.Log("azurefake: %s: QEMU: %v", v.name, err)
	}
}

func (f *Fake) boot(v *vm, disk string, ports []int) {
	time.Sleep(300 * time.Millisecond)
	cloudfake.Boot(&f.mu, f.o.Boot, v.console, "azurefake: placeholder VM "+v.name+" running (no QEMU)",
		func() error { return f.startQEMU(v, disk, ports) },
		func() {
			if v.state == "starting" {
				v.state = "running"
			}
		},
		func(err error) { f.exited(v, err) })
}

func (f *Fake) startQEMU(v *vm, disk string, ports []int) error {
	q, err := cloudfake.Start(cloudfake.Spec{Name: "azurefake: " + v.name, Dir: v.dir, Console: v.console,
		Args: []string{
			// The managed disk: the uploaded VHD, read as QEMU's vpc;
			// writes stay in the VM (snapshot=on).
			"-drive", "file=" + disk + ",format=vpc,if=virtio,snapshot=on",
		},
		Net: &cloudfake.Net{Addr: v.addr, Forwards: ports, Metadata: cloudfake.AzureMetadata(v.userData)}, Log: f.o.Log,
	}, func(err error) { f.exited(v, err) })
	if err != nil {
		return err
	}
	v.qemu = q
	return nil
}
