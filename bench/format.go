package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file owns how values look to people, in the table report and the
// comparison: durations in milliseconds, sizes in binary units.

// byteScale returns the binary unit for showing v bytes, and its size.
func byteScale(v float64) (string, float64) {
	switch a := math.Abs(v); {
	case a >= 1<<30:
		return "GiB", 1 << 30
	case a >= 1<<20:
		return "MiB", 1 << 20
	case a >= 1<<10:
		return "KiB", 1 << 10
	}
	return "B", 1
}

// formatValue shows v in unit: seconds as "512.3 ms", bytes as "45.2 MiB",
// ratios as "3.42x", anything else in %g.
func formatValue(v float64, unit string) string {
	switch unit {
	case UnitSeconds:
		return fmt.Sprintf("%.1f ms", v*1e3)
	case UnitBytes:
		name, size := byteScale(v)
		if size == 1 {
			return fmt.Sprintf("%.0f B", v)
		}
		return fmt.Sprintf("%.1f %s", v/size, name)
	case UnitRatio:
		return fmt.Sprintf("%.2fx", v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + unitSuffixText(unit)
}

// formatSpread shows "mean ± stddev unit", both on the mean's scale.
func formatSpread(mean, sd float64, unit string) string {
	switch unit {
	case UnitSeconds:
		return fmt.Sprintf("%.1f ± %.1f ms", mean*1e3, sd*1e3)
	case UnitBytes:
		name, size := byteScale(mean)
		if size == 1 {
			return fmt.Sprintf("%.0f ± %.0f B", mean, sd)
		}
		return fmt.Sprintf("%.1f ± %.1f %s", mean/size, sd/size, name)
	case UnitRatio:
		return fmt.Sprintf("%.2f ± %.2fx", mean, sd)
	}
	return fmt.Sprintf("%.4g ± %.4g%s", mean, sd, unitSuffixText(unit))
}

// formatExact shows v with every digit that matters, for when the rounded
// forms of two different values look the same ("45.2 MiB" both).
func formatExact(v float64, unit string) string {
	switch unit {
	case UnitSeconds:
		return strconv.FormatFloat(v*1e3, 'f', -1, 64) + " ms"
	case UnitBytes:
		return strconv.FormatFloat(v, 'f', -1, 64) + " B"
	}
	return strconv.FormatFloat(v, 'g', -1, 64) + unitSuffixText(unit)
}

func unitSuffixText(unit string) string {
	if unit == "" {
		return ""
	}
	return " " + unit
}

// formatPercent shows a fraction as a signed percentage, "+10.2%", with
// more digits when one decimal would round a real change to zero.
func formatPercent(f float64) string {
	switch {
	case math.IsInf(f, 0) || math.IsNaN(f):
		return fmt.Sprintf("%+v", f)
	case f != 0 && math.Abs(f) < 0.0005:
		return fmt.Sprintf("%+.2g%%", f*100)
	}
	return fmt.Sprintf("%+.1f%%", f*100)
}

// oneLine replaces line breaks and tabs, which would end a header line or a
// table cell, with spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
}
