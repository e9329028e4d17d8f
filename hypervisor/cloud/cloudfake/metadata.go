package cloudfake

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The clouds' instance metadata services, as one instance sees them: the
// paths, the headers they insist on and the status codes they answer
// with, for what kitinit reads (its seed). A fake serves one per machine
// and QEMU forwards the guest's 169.254.169.254:80 to it (see Net).

// AWSMetadata is EC2's IMDS with IMDSv2 required (HttpTokens=required):
// PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds
// (1–21600) gives a token, which GET /latest/user-data wants in
// X-aws-ec2-metadata-token (401 without a valid one); 404 when the
// instance has no user data. userData is the decoded user data.
func AWSMetadata(userData []byte) http.Handler {
	var mu sync.Mutex
	tokens := map[string]time.Time{} // token → expiry
	mux := http.NewServeMux()
	mux.HandleFunc("/latest/api/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			http.Error(w, "", http.StatusMethodNotAllowed)
			return
		}
		if r.Header.Get("X-Forwarded-For") != "" {
			// IMDSv2 refuses what a proxy forwarded.
			http.Error(w, "", http.StatusForbidden)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		var b [24]byte
		rand.Read(b[:])
		tok := base64.RawURLEncoding.EncodeToString(b[:])
		mu.Lock()
		tokens[tok] = time.Now().Add(time.Duration(ttl) * time.Second)
		mu.Unlock()
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(tok))
	})
	mux.HandleFunc("/latest/user-data", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "", http.StatusMethodNotAllowed)
			return
		}
		mu.Lock()
		exp, ok := tokens[r.Header.Get("X-aws-ec2-metadata-token")]
		mu.Unlock()
		if !ok || time.Now().After(exp) {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		if userData == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(userData)
	})
	return mux
}

// GCEMetadata is Compute Engine's metadata server for an instance with
// these metadata items: requests need Metadata-Flavor: Google (403
// without), answers carry it; a missing attribute is 404.
func GCEMetadata(items map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Metadata-Flavor", "Google")
		if r.Header.Get("Metadata-Flavor") != "Google" || r.Header.Get("X-Forwarded-For") != "" {
			http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
			return
		}
		const prefix = "/computeMetadata/v1/instance/attributes/"
		if r.Method != http.MethodGet || len(r.URL.Path) <= len(prefix) || r.URL.Path[:len(prefix)] != prefix {
			http.NotFound(w, r)
			return
		}
		v, ok := items[r.URL.Path[len(prefix):]]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/text")
		w.Write([]byte(v))
	})
}

// AzureMetadata is Azure IMDS for a VM created with userData (base64, as
// the VM's properties carry it; "" for none): requests need Metadata: true
// and an api-version (400 without); format=text gives the value as is.
func AzureMetadata(userData string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata") != "true" || r.Header.Get("X-Forwarded-For") != "" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"Bad request. Required metadata header not specified"}`))
			return
		}
		q := r.URL.Query()
		if q.Get("api-version") == "" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"Bad request. api-version was not specified in the request"}`))
			return
		}
		if r.Method != http.MethodGet || r.URL.Path != "/metadata/instance/compute/userData" {
			http.NotFound(w, r)
			return
		}
		if q.Get("format") != "text" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"Bad request. Leaf nodes only support the text format"}`))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(userData))
	})
}
