// Package dashboard owns kitrun's static performance dashboard: one
// self-contained HTML page (every script and style inline, no network
// needed) built from the history, with a raw result file per run beside it.
//
// What the page ships (it must stay small for a year of nightly runs): for
// every run of every configuration and metric, the median and its 95%
// confidence interval; for the newest SampleRuns runs, every sample too.
// Values are quantized per series to a thousandth of the series' order of
// magnitude (1 ms for boot times of seconds, 1 kB for sizes of megabytes)
// and delta-encoded as integers.
package dashboard

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kitrun/kitrun/bench"
	"github.com/kitrun/kitrun/bench/history"
	"github.com/kitrun/kitrun/boot/atomicfile"
)

//go:embed page.html
var pageHTML string

//go:embed page.js
var pageJS string

//go:embed page.css
var pageCSS string

// DefaultSampleRuns is how many of the newest runs the page shows sample by
// sample.
const DefaultSampleRuns = 30

// Options tune Build.
type Options struct {
	// Dir is the site's directory: index.html and runs/ID.json.
	Dir string
	// SampleRuns is how many of the newest runs are shipped sample by
	// sample (0: DefaultSampleRuns; negative: every run).
	SampleRuns int
	// Since drops older runs (zero: none).
	Since time.Time
	// Title heads the page.
	Title string
	// NoRawResults skips writing runs/ID.json (the links then dangle):
	// for measuring the page alone.
	NoRawResults bool
}

// Stats says what Build wrote.
type Stats struct {
	Runs, Series, Points, Samples, ChangePoints int
	HTMLBytes                                   int
	RawWritten                                  int // raw result files written (existing ones are kept)
}

// Build writes the dashboard of the store into opts.Dir.
func Build(ctx context.Context, s *history.Store, opts Options) (Stats, error) {
	if opts.SampleRuns == 0 {
		opts.SampleRuns = DefaultSampleRuns
	}
	if opts.Title == "" {
		opts.Title = "kitrun performance"
	}
	series, err := s.Load(ctx, history.Query{Since: opts.Since, SampleRuns: opts.SampleRuns})
	if err != nil {
		return Stats{}, err
	}
	runs, err := s.Runs(ctx)
	if err != nil {
		return Stats{}, err
	}
	data, st := encode(series, runs, opts)
	st.Runs = len(data.Runs)
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return st, err
	}
	var page bytes.Buffer
	if err := render(&page, data, opts.Title); err != nil {
		return st, err
	}
	st.HTMLBytes = page.Len()
	if err := atomicfile.Write(filepath.Join(opts.Dir, "index.html"), page.Bytes(), 0o644); err != nil {
		return st, err
	}
	if opts.NoRawResults {
		return st, nil
	}
	rawDir := filepath.Join(opts.Dir, "runs")
	if err := os.MkdirAll(rawDir, 0o755); err != nil {
		return st, err
	}
	for _, r := range data.runs {
		path := filepath.Join(rawDir, strconv.FormatInt(r.ID, 10)+".json")
		if _, err := os.Stat(path); err == nil {
			continue // a run's results never change
		}
		if err := writeRaw(ctx, s, r, path); err != nil {
			return st, err
		}
		st.RawWritten++
	}
	return st, nil
}

// writeRaw writes a run's results: the file it was recorded from when it is
// still there and still that run, else the results rebuilt from the store.
func writeRaw(ctx context.Context, s *history.Store, r *history.Run, path string) error {
	if res, err := bench.ReadResults(r.Source); err == nil && res.Started.Equal(r.Started) {
		return bench.WriteFile(path, res, bench.FormatJSON, bench.ReportOptions{})
	}
	res, err := s.RunResults(ctx, r.ID)
	if err != nil {
		return err
	}
	return bench.WriteFile(path, res, bench.FormatJSON, bench.ReportOptions{})
}

// pageData is the JSON the page's script reads. Short keys: it is most of
// the page's weight.
type pageData struct {
	Generated string       `json:"generated"`
	SampleRun int          `json:"sampleRuns"`
	Runs      [][]any      `json:"runs"` // [id, unix seconds, kitrun, qemu, backend, host]
	Configs   []configJSON `json:"configs"`
	Metrics   []metricJSON `json:"metrics"`
	Series    []seriesJSON `json:"series"`
	runs      []*history.Run
}

type configJSON struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Arch    string `json:"arch"`
	Machine string `json:"machine"`
	MemMiB  int    `json:"mem"`
	Accel   string `json:"accel"`
	Format  string `json:"format,omitempty"`
	Floor   bool   `json:"floor,omitempty"`
	Backend string `json:"backend"`
}

type metricJSON struct {
	Name  string `json:"name"`
	Unit  string `json:"unit"`
	Lower bool   `json:"lower"`
	Exact bool   `json:"exact,omitempty"`
}

// seriesJSON is one metric of one configuration. Values are integers q,
// the value being q·Step.
type seriesJSON struct {
	Config int     `json:"c"`
	Metric int     `json:"m"`
	Step   float64 `json:"step"`
	// Run is each point's run index into Runs, delta-encoded.
	Run []int `json:"r"`
	// Med is each point's median, delta-encoded; Lo and Hi the distance of
	// the interval's ends below and above it.
	Med []int64 `json:"med"`
	Lo  []int64 `json:"lo"`
	Hi  []int64 `json:"hi"`
	// Samples has, for each of the last len(Samples) points, its samples
	// as offsets from its median.
	Samples [][]int64 `json:"s,omitempty"`
	// Changes are the change points: [point index, effect in %, confidence].
	Changes [][3]float64 `json:"cp,omitempty"`
	// Commits are the spec's git commits where they change: [point index, commit].
	Commits [][2]any `json:"gc,omitempty"`
}

func encode(series []*history.Series, all []*history.Run, opts Options) (*pageData, Stats) {
	// Empty, not nil: the page's script reads arrays, and JSON's null is none.
	data := &pageData{Generated: time.Now().UTC().Format(time.RFC3339), SampleRun: opts.SampleRuns,
		Runs: [][]any{}, Configs: []configJSON{}, Metrics: []metricJSON{}, Series: []seriesJSON{}}
	var st Stats
	runIndex := map[int64]int{}
	for _, r := range all {
		if r.Started.Before(opts.Since) {
			continue
		}
		runIndex[r.ID] = len(data.Runs)
		data.runs = append(data.runs, r)
		data.Runs = append(data.Runs, []any{r.ID, r.Started.Unix(), r.Kitrun, r.QEMU, r.Backend, r.Host})
	}
	configIndex, metricIndex := map[string]int{}, map[string]int{}
	for _, sr := range series {
		ci, ok := configIndex[sr.Config.ID]
		if !ok {
			ci = len(data.Configs)
			configIndex[sr.Config.ID] = ci
			c := sr.Config
			data.Configs = append(data.Configs, configJSON{ID: c.ID, Name: c.Name, Arch: c.Arch, Machine: c.Machine,
				MemMiB: c.MemMiB, Accel: c.Accel, Format: c.Format, Floor: c.Floor, Backend: sr.Backend})
		}
		mi, ok := metricIndex[sr.Metric]
		if !ok {
			mi = len(data.Metrics)
			metricIndex[sr.Metric] = mi
			data.Metrics = append(data.Metrics, metricJSON{Name: sr.Metric, Unit: sr.Unit, Lower: sr.Lower, Exact: sr.Exact})
		}
		js := seriesJSON{Config: ci, Metric: mi, Step: step(sr)}
		q := func(v float64) int64 { return int64(math.Round(v / js.Step)) }
		prevRun, prevMed := 0, int64(0)
		firstSampled := -1
		runs := make([][]float64, len(sr.Points))
		lastCommit := ""
		for i, p := range sr.Points {
			ri := runIndex[p.Run.ID]
			js.Run = append(js.Run, ri-prevRun)
			prevRun = ri
			m := q(p.Median)
			js.Med = append(js.Med, m-prevMed)
			prevMed = m
			js.Lo = append(js.Lo, m-q(p.Lo))
			js.Hi = append(js.Hi, q(p.Hi)-m)
			if len(p.Samples) > 0 && firstSampled < 0 {
				firstSampled = i
			}
			runs[i] = p.Samples
			if len(runs[i]) == 0 {
				runs[i] = []float64{p.Median}
			}
			if p.GitCommit != lastCommit {
				js.Commits = append(js.Commits, [2]any{i, p.GitCommit})
				lastCommit = p.GitCommit
			}
		}
		if firstSampled >= 0 {
			for _, p := range sr.Points[firstSampled:] {
				m := q(p.Median)
				offs := make([]int64, len(p.Samples))
				for k, v := range p.Samples {
					offs[k] = q(v) - m
				}
				js.Samples = append(js.Samples, offs)
				st.Samples += len(p.Samples)
			}
		}
		for _, c := range history.DetectChanges(runs, history.DetectOptions{Exact: sr.Exact}) {
			js.Changes = append(js.Changes, [3]float64{float64(c.Index), math.Round(c.Effect*1000) / 10, math.Round(c.Confidence*1e4) / 1e4})
			st.ChangePoints++
		}
		st.Points += len(sr.Points)
		data.Series = append(data.Series, js)
	}
	st.Series = len(data.Series)
	return data, st
}

// step is a series' quantum: a thousandth of the order of magnitude of its
// largest median (1 for a series of zeros).
func step(sr *history.Series) float64 {
	top := 0.0
	for _, p := range sr.Points {
		top = math.Max(top, math.Abs(p.Median))
	}
	if top == 0 || math.IsNaN(top) || math.IsInf(top, 0) {
		return 1
	}
	s := math.Pow(10, math.Floor(math.Log10(top))-3)
	if sr.Unit == bench.UnitBytes && s < 1 {
		s = 1 // bytes are whole
	}
	return s
}

func render(w io.Writer, data *pageData, title string) error {
	js, err := json.Marshal(data)
	if err != nil {
		return err
	}
	t, err := template.New("page").Parse(pageHTML)
	if err != nil {
		return fmt.Errorf("dashboard template: %w", err)
	}
	return t.Execute(w, map[string]any{
		"Title": title,
		// The data is JSON in a <script type="application/json">: only
		// "</" could end it early, and encoding/json escapes "<" already.
		"Data":   template.JS(js),
		"Script": template.JS(pageJS),
		"Style":  template.CSS(pageCSS),
	})
}
