package azurefake

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kitrun/kitrun/internal/childproc"

	"github.com/kitrun/kitrun/hypervisor"
)

// Blob storage is Azurite (npm azurite, installed by `make deps`), with
// OAuth: Azurite takes bearer tokens only over HTTPS (--oauth basic checks
// a token's issuer, audience and times, not its signature), so the fake
// makes a self-signed certificate for 127.0.0.1, which the backend trusts
// through blob-ca=. In front of Azurite the fake runs a TLS proxy with the
// same certificate: it counts the uploads (Put Blob, Put Page) that the
// tests check, and changes nothing.

// AzuriteAccount is Azurite's built-in storage account.
const AzuriteAccount = "devstoreaccount1"

// azuriteBin finds azurite-blob: $AZURITE_BLOB, then make deps' npm
// prefix under $KITRUN_CACHE (default ~/.cache/kitrun), then PATH.
func azuriteBin() (string, error) {
	if p := os.Getenv("AZURITE_BLOB"); p != "" {
		return p, nil
	}
	cache := os.Getenv("KITRUN_CACHE")
	if cache == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(d, "kitrun")
		}
	}
	if cache != "" {
		p := filepath.Join(cache, "npm", "node_modules", ".bin", "azurite-blob")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return exec.LookPath("azurite-blob")
}

// azurite is a running Azurite and the proxy in front of it.
type azurite struct {
	url    string // the proxy's account URL, ending in /
	direct string // Azurite's own account URL
	caPath string
	client *http.Client
	proxy  *httptest.Server
	cmd    *exec.Cmd
	exited <-chan error
}

func startAzurite(t testing.TB, f *Fake) *azurite {
	t.Helper()
	bin, err := azuriteBin()
	if err != nil {
		msg := "azurite-blob not found (make deps installs npm azurite@3.37.0 under $KITRUN_CACHE/npm; or set AZURITE_BLOB): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	certPEM, keyPEM, cert := selfSigned(t)
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := hypervisor.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
		"--oauth", "basic", "--cert", certPath, "--key", keyPath,
		"--inMemoryPersistence", "--loose", "--skipApiVersionCheck", "--disableTelemetry", "--silent")
	cmd.Dir = dir // anything it writes (a debug log) goes with the test
	cmd.Stdout, cmd.Stderr = &out, &out
	exited, err := childproc.Start(cmd)
	if err != nil {
		t.Fatalf("starting Azurite: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	a := &azurite{caPath: certPath, cmd: cmd, exited: exited,
		direct: fmt.Sprintf("https://127.0.0.1:%d/%s/", port, AzuriteAccount),
		client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	t.Cleanup(a.close)
	// Ready once it answers (a container listing; 30 s: node starts
	// slowly on a loaded host).
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := a.do(http.MethodGet, a.direct+"?comp=list", nil, nil)
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case werr := <-exited:
			t.Fatalf("Azurite exited at start (%v): %s", werr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Azurite did not answer on port %d within 30s: %v; its output: %s", port, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	target, _ := url.Parse(fmt.Sprintf("https://127.0.0.1:%d", port))
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = a.client.Transport
	a.proxy = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.countBlob(r)
		rp.ServeHTTP(w, r)
	}))
	a.proxy.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: keyOf(t, keyPEM)}}}
	a.proxy.StartTLS()
	a.url = a.proxy.URL + "/" + AzuriteAccount + "/"
	resp, err := a.do(http.MethodPut, a.direct+Container+"?restype=container", nil, nil)
	if err != nil {
		t.Fatalf("creating container %s in Azurite: %v", Container, err)
	}
	resp.Body.Close()
	return a
}

func (a *azurite) close() {
	if a.proxy != nil {
		a.proxy.Close()
	}
	childproc.Kill(a.cmd)
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
	}
}

// token is a bearer token Azurite's basic OAuth accepts (as the backend's
// fake-credential makes).
func token() string {
	enc := base64.RawURLEncoding.EncodeToString
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"aud": "https://storage.azure.com", "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()})
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(claims) + "."
}

// do makes a request to Azurite as the fake itself (not counted); a
// status of 300 or more is an error.
func (a *azurite) do(method, u string, body []byte, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token())
	req.Header.Set("x-ms-version", "2023-11-03")
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, b)
	}
	return resp, nil
}

// read returns a blob ("container/name") whole.
func (a *azurite) read(key string) ([]byte, error) {
	resp, err := a.do(http.MethodGet, a.direct+key, nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// list returns the container's blob names.
func (a *azurite) list() ([]string, error) {
	resp, err := a.do(http.MethodGet, a.direct+Container+"?restype=container&comp=list", nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var l struct {
		Names []string `xml:"Blobs>Blob>Name"`
	}
	if err := xml.NewDecoder(resp.Body).Decode(&l); err != nil {
		return nil, err
	}
	return l.Names, nil
}

// countBlob counts what the backend uploads through the proxy.
func (f *Fake) countBlob(r *http.Request) {
	if r.Method != http.MethodPut {
		return
	}
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case q.Get("comp") == "page":
		f.pages++
	case q.Get("comp") == "" && q.Get("restype") == "" && r.Header.Get("x-ms-blob-type") == "PageBlob":
		f.puts++
	}
}

// selfSigned makes a certificate for 127.0.0.1 and its key.
func selfSigned(t testing.TB) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "azurefake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), cert
}

func keyOf(t testing.TB, keyPEM []byte) *ecdsa.PrivateKey {
	b, _ := pem.Decode(keyPEM)
	k, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// LeaveBlob makes a page blob of size bytes (a multiple of 512) under
// name in the container, as a kitrun killed mid-upload leaves one.
func (f *Fake) LeaveBlob(t testing.TB, name string, size int) {
	t.Helper()
	resp, err := f.blob.do(http.MethodPut, f.blob.direct+Container+"/"+name, nil,
		map[string]string{"x-ms-blob-type": "PageBlob", "x-ms-blob-content-length": strconv.Itoa(size)})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
