package cloud

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"time"
)

// The tags on every resource a cloud backend creates. A platform whose
// tag keys cannot hold ':' (GCP labels) maps them with its own rule.
const (
	// TagRun is the ID of the kitrun process (RunID) that created it.
	TagRun = "kitrun:run"
	// TagCreated and TagExpires are RFC 3339 times in UTC. After
	// TagExpires `kitrun cloud sweep` deletes the resource whatever its
	// run's state: an instance's lifetime, or how long an image is kept
	// for reuse.
	TagCreated = "kitrun:created"
	TagExpires = "kitrun:expires"
	// TagDigest is an image's content digest (the SHA-256 of the disk
	// uploaded): how a later run finds it instead of uploading again.
	TagDigest = "kitrun:digest"
	// TagName is the image's or machine's kitrun name, for people.
	TagName = "Name"
)

var (
	runOnce sync.Once
	runID   string
)

// RunID names this kitrun process in the tags of what it creates: the UTC
// start time, the host and a random part.
func RunID() string {
	runOnce.Do(func() {
		var b [4]byte
		rand.Read(b[:])
		host, _ := os.Hostname()
		if len(host) > 20 {
			host = host[:20]
		}
		runID = fmt.Sprintf("%s-%s-%d-%s", time.Now().UTC().Format("20060102T150405Z"), host, os.Getpid(), hex.EncodeToString(b[:]))
	})
	return runID
}

// Tags are the tags of a resource created now that lives for at most ttl.
func Tags(now time.Time, ttl time.Duration, extra map[string]string) map[string]string {
	t := map[string]string{
		TagRun:     RunID(),
		TagCreated: now.UTC().Format(time.RFC3339),
		TagExpires: now.Add(ttl).UTC().Format(time.RFC3339),
	}
	for k, v := range extra {
		t[k] = v
	}
	return t
}
