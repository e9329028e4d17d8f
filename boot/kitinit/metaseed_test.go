//go:build linux

package kitinit

import (
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor/cloud/cloudfake"
)

// seedArchive is a newc archive's first bytes and some more: fetchSeed
// checks the magic only; unpackArchive reads the rest.
const seedArchive = "070701" + "00000000-not-a-real-archive-but-the-magic-is-right"

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func TestFetchSeedFromEachCloud(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte(seedArchive))
	for _, c := range []struct {
		source string
		with   http.Handler
		none   http.Handler
	}{
		{initproto.SeedAWS, cloudfake.AWSMetadata([]byte(seedArchive)), cloudfake.AWSMetadata(nil)},
		{initproto.SeedGCE, cloudfake.GCEMetadata(map[string]string{initproto.SeedGCEKey: b64}), cloudfake.GCEMetadata(map[string]string{"other": "x"})},
		{initproto.SeedAzure, cloudfake.AzureMetadata(b64), cloudfake.AzureMetadata("")},
	} {
		t.Run(c.source, func(t *testing.T) {
			got, err := fetchSeed(c.source, serve(t, c.with), 10*time.Second)
			if err != nil || string(got) != seedArchive {
				t.Fatalf("fetchSeed = %q, %v; want the archive", got, err)
			}
			got, err = fetchSeed(c.source, serve(t, c.none), 10*time.Second)
			if err != nil || got != nil {
				t.Fatalf("with no seed: fetchSeed = %q, %v; want nil, nil", got, err)
			}
		})
	}
}

// The platforms' guards are what makes the answer the platform's: a
// server that ignores them (here: any HTTP server answering 200) is not
// taken for Compute Engine's, and the seed itself never appears in an error.
func TestFetchSeedRefuses(t *testing.T) {
	plain := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret-" + seedArchive)) }))
	if _, err := fetchSeed(initproto.SeedGCE, plain, 10*time.Second); err == nil || !strings.Contains(err.Error(), "Metadata-Flavor") {
		t.Errorf("GCE seed from a server without Metadata-Flavor: err = %v", err)
	}
	_, err := fetchSeed(initproto.SeedAzure, plain, 10*time.Second)
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("a body that is not base64: err = %v (must fail, without the body)", err)
	}
	big := strings.Repeat("A", initproto.MaxSeed+4)
	if _, err := fetchSeed(initproto.SeedAzure, serve(t, cloudfake.AzureMetadata(big)), 10*time.Second); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("an oversized seed: err = %v", err)
	}
	if _, err := fetchSeed(initproto.SeedAWS, serve(t, cloudfake.AWSMetadata([]byte("#!/bin/sh\necho hi\n"))), 10*time.Second); err == nil || !strings.Contains(err.Error(), "not a newc archive") {
		t.Errorf("user data that is not a seed: err = %v", err)
	}
}

// IMDSv2: a GET without the session token is refused (401), so the client
// must do the PUT first, as the fake insists.
func TestAWSMetadataNeedsToken(t *testing.T) {
	addr := serve(t, cloudfake.AWSMetadata([]byte(seedArchive)))
	st, _, _, err := metaGet(time.Now().Add(10*time.Second), addr, "GET", "/latest/user-data", nil, 1024)
	if err != nil || st != 401 {
		t.Fatalf("GET without a token: %d, %v; want 401", st, err)
	}
	st, hdr, tok, err := metaGet(time.Now().Add(10*time.Second), addr, "PUT", "/latest/api/token", [][2]string{{"X-aws-ec2-metadata-token-ttl-seconds", "60"}}, 512)
	if err != nil || st != 200 || len(tok) == 0 || hdr["x-aws-ec2-metadata-token-ttl-seconds"] != "60" {
		t.Fatalf("PUT token: %d %v %q, %v", st, hdr, tok, err)
	}
}

// The network comes up a little before the metadata service answers (or
// the first answers are 5xx): the fetch retries within its deadline.
func TestFetchSeedRetries(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens yet: connection refused
	fails := 2
	h := cloudfake.GCEMetadata(map[string]string{initproto.SeedGCEKey: base64.StdEncoding.EncodeToString([]byte(seedArchive))})
	go func() {
		time.Sleep(300 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return
		}
		s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if fails > 0 {
				fails--
				w.Header().Set("Metadata-Flavor", "Google")
				w.WriteHeader(503)
				return
			}
			h.ServeHTTP(w, r)
		})}
		t.Cleanup(func() { s.Close() })
		s.Serve(l)
	}()
	got, err := fetchSeed(initproto.SeedGCE, addr, 10*time.Second)
	if err != nil || string(got) != seedArchive {
		t.Fatalf("fetchSeed = %q, %v", got, err)
	}
}
