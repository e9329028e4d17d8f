package gcp

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/api/googleapi"

	"github.com/kitrun/kitrun/hypervisor/cloud"
)

// GCP labels: keys and values of lowercase letters, digits, '_' and '-',
// at most 63 characters. kitrun's tags map onto them so:
const (
	LabelRun     = "kitrun-run"     // cloud.TagRun, lowercased
	LabelCreated = "kitrun-created" // cloud.TagCreated, Unix seconds
	LabelExpires = "kitrun-expires" // cloud.TagExpires, Unix seconds
	LabelDigest  = "kitrun-digest"  // cloud.TagDigest, its first 63 hex digits
	LabelName    = "kitrun-name"    // cloud.TagName, sanitized
)

// labelValue makes s a valid label value.
func labelValue(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
		if b.Len() == 63 {
			break
		}
	}
	return b.String()
}

// resourceName makes s a valid Compute Engine resource name: lowercase
// letters, digits and '-', starting with a letter, not ending with '-', at
// most 62 characters here.
func resourceName(s string) string {
	n := []byte(strings.ReplaceAll(labelValue(s), "_", "-"))
	if len(n) > 62 {
		n = n[:62]
	}
	if len(n) == 0 || n[0] < 'a' || n[0] > 'z' {
		n = append([]byte("k"), n...)
	}
	return strings.TrimRight(string(n), "-")
}

// runLabel is this process's run ID as a label value.
func runLabel() string { return labelValue(cloud.RunID()) }

// labels maps cloud.Tags to GCP labels.
func labels(tags map[string]string) map[string]string {
	l := map[string]string{}
	for k, v := range tags {
		switch k {
		case cloud.TagRun:
			l[LabelRun] = labelValue(v)
		case cloud.TagCreated, cloud.TagExpires:
			if t, err := time.Parse(time.RFC3339, v); err == nil {
				key := LabelCreated
				if k == cloud.TagExpires {
					key = LabelExpires
				}
				l[key] = strconv.FormatInt(t.Unix(), 10)
			}
		case cloud.TagDigest:
			l[LabelDigest] = labelValue(v)
		case cloud.TagName:
			l[LabelName] = labelValue(v)
		}
	}
	return l
}

// tagsOf maps labels back to cloud's tags (for sweep's decisions).
func tagsOf(l map[string]string) map[string]string {
	t := map[string]string{}
	for k, v := range l {
		switch k {
		case LabelRun:
			t[cloud.TagRun] = v
		case LabelCreated, LabelExpires:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				key := cloud.TagCreated
				if k == LabelExpires {
					key = cloud.TagExpires
				}
				t[key] = time.Unix(n, 0).UTC().Format(time.RFC3339)
			}
		case LabelDigest:
			t[cloud.TagDigest] = v
		case LabelName:
			t[cloud.TagName] = v
		}
	}
	return t
}

// apiCode is the HTTP status of a Google API error (0 if none).
func apiCode(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

func notFound(err error) bool { return apiCode(err) == http.StatusNotFound }

// retryable: rate limiting (429, or 403 rateLimitExceeded) and the
// service's passing failures (500, 502, 503, 504).
func retryable(err error) bool {
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		return false
	}
	switch ge.Code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case http.StatusForbidden:
		for _, e := range ge.Errors {
			if e.Reason == "rateLimitExceeded" || e.Reason == "userRateLimitExceeded" {
				return true
			}
		}
	}
	return false
}

// retry calls f until it succeeds, fails for good, or max-attempts
// calls were made, backing off exponentially (up to max-backoff) while
// the service throttles or fails for a moment. Compute Engine's REST
// client does not retry by itself.
func retry[T any](ctx context.Context, b *Backend, f func() (T, error)) (T, error) {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		v, err := f()
		if err == nil || !retryable(err) || attempt >= b.cfg.MaxAttempts {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, b.cfg.MaxBackoff)
	}
}
