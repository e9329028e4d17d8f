package history

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// This file owns the SVG plot of one metric over time (`kitrun history
// plot`), for terminals and CI comments: per configuration the 95% band of
// the median, the median line, every sample that was loaded, and the
// change points as dashed lines.

// plotColors are distinguishable on white and for common color blindness
// (Okabe–Ito).
var plotColors = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"}

// PlotSVG writes an SVG of the series (one metric, any number of
// configurations) on a shared axis of run dates.
func PlotSVG(w io.Writer, series []*Series, title string) error {
	const width, height = 960, 420
	const left, right, top, bottom = 70, 20, 36, 110
	var tmin, tmax int64 = math.MaxInt64, math.MinInt64
	ymin, ymax := math.Inf(1), math.Inf(-1)
	unit := ""
	for _, sr := range series {
		unit = sr.Unit
		for _, p := range sr.Points {
			t := p.Run.Started.Unix()
			tmin, tmax = min(tmin, t), max(tmax, t)
			for _, v := range append([]float64{p.Lo, p.Hi, p.Median}, p.Samples...) {
				if !math.IsNaN(v) {
					ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%d" y="22" font-size="15">%s</text>`+"\n", left, html.EscapeString(title))
	if tmin > tmax {
		b.WriteString(`<text x="70" y="80">no runs</text></svg>` + "\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	if tmax == tmin {
		tmin, tmax = tmin-3600, tmax+3600
	}
	if ymax == ymin {
		ymin, ymax = ymin-math.Max(1e-9, math.Abs(ymin)*0.05), ymax+math.Max(1e-9, math.Abs(ymax)*0.05)
	}
	pad := (ymax - ymin) * 0.05
	ymin, ymax = ymin-pad, ymax+pad
	pw, ph := float64(width-left-right), float64(height-top-bottom)
	x := func(t int64) float64 { return left + pw*float64(t-tmin)/float64(tmax-tmin) }
	y := func(v float64) float64 { return top + ph*(1-(v-ymin)/(ymax-ymin)) }
	// Axes and ticks.
	fmt.Fprintf(&b, `<g stroke="#888"><line x1="%d" y1="%d" x2="%d" y2="%d"/><line x1="%d" y1="%d" x2="%d" y2="%d"/></g>`+"\n",
		left, top, left, height-bottom, left, height-bottom, width-right, height-bottom)
	for i := 0; i <= 5; i++ {
		v := ymin + (ymax-ymin)*float64(i)/5
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text><line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n",
			left-6, y(v)+4, html.EscapeString(FormatValue(v, unit)), left, width-right, y(v), y(v))
	}
	for i := 0; i <= 4; i++ {
		t := tmin + (tmax-tmin)*int64(i)/4
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(t), height-bottom+16,
			timeLabel(t))
	}
	for si, sr := range series {
		color := plotColors[si%len(plotColors)]
		var band, line []string
		for _, p := range sr.Points {
			band = append(band, fmt.Sprintf("%.1f,%.1f", x(p.Run.Started.Unix()), y(p.Hi)))
			line = append(line, fmt.Sprintf("%.1f,%.1f", x(p.Run.Started.Unix()), y(p.Median)))
		}
		for i := len(sr.Points) - 1; i >= 0; i-- {
			p := sr.Points[i]
			band = append(band, fmt.Sprintf("%.1f,%.1f", x(p.Run.Started.Unix()), y(p.Lo)))
		}
		fmt.Fprintf(&b, `<polygon points="%s" fill="%s" fill-opacity="0.15"/>`+"\n", strings.Join(band, " "), color)
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", strings.Join(line, " "), color)
		runs := make([][]float64, len(sr.Points))
		for i, p := range sr.Points {
			runs[i] = p.Samples
			if len(runs[i]) == 0 {
				runs[i] = []float64{p.Median}
			}
			for _, v := range p.Samples {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s" fill-opacity="0.6"/>`+"\n", x(p.Run.Started.Unix()), y(v), color)
			}
		}
		for _, c := range DetectChanges(runs, DetectOptions{Exact: sr.Exact}) {
			p := sr.Points[c.Index]
			cx := x(p.Run.Started.Unix())
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-dasharray="4 3"><title>change at run #%d (%s, kitrun %s): %+.1f%%, confidence %.4f</title></line>`+"\n",
				cx, cx, top, height-bottom, color, p.Run.ID, timeLabel(p.Run.Started.Unix()), html.EscapeString(p.Run.Kitrun), c.Effect*100, c.Confidence)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="%s" font-size="11">%+.1f%% #%d</text>`+"\n", cx+3, top+12+14*si, color, c.Effect*100, p.Run.ID)
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			left, height-bottom+32+16*si, color, left+16, height-bottom+41+16*si, html.EscapeString(sr.Config.ID))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func timeLabel(unix int64) string {
	return timeUTC(unix).Format("2006-01-02 15:04")
}
