package bench

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMannWhitneyKnownValues(t *testing.T) {
	tests := []struct {
		name  string
		x, y  []float64
		u     float64
		p     float64
		tol   float64 // absolute tolerance on p
		exact bool
	}{
		{
			// Every x below every y: U = 0; of the C(10,5) = 252 orders, one
			// gives U = 0 and one (its mirror) U = 25.
			name: "separated", x: []float64{1, 2, 3, 4, 5}, y: []float64{6, 7, 8, 9, 10},
			u: 0, p: 2.0 / 252, tol: 1e-15, exact: true,
		},
		{
			name: "separated, swapped", x: []float64{6, 7, 8, 9, 10}, y: []float64{1, 2, 3, 4, 5},
			u: 0, p: 2.0 / 252, tol: 1e-15, exact: true,
		},
		{
			// C(6,3) = 20 orders; the smallest two-sided p at 3+3 is 0.1.
			name: "3 against 3", x: []float64{1, 2, 3}, y: []float64{4, 5, 6},
			u: 0, p: 2.0 / 20, tol: 1e-15, exact: true,
		},
		{
			// x1 beats none of y, x2 beats y1: Ux = 1. Orders of 2+2 with
			// U ≤ 1: 2 of 6, so p = 2·2/6.
			name: "2 against 2", x: []float64{1, 3}, y: []float64{2, 4},
			u: 1, p: 4.0 / 6, tol: 1e-15, exact: true,
		},
		{
			// The example of R's ?wilcox.test: W = 35 (so U = min(35,
			// 50-35) = 15), one-sided exact p 0.1272, two-sided twice that.
			name: "R wilcox.test example",
			x:    []float64{0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46},
			y:    []float64{1.15, 0.88, 0.90, 0.74, 1.21},
			u:    15, p: 2 * 0.1272, tol: 2e-4, exact: true,
		},
		{
			// Ties: normal approximation. Pooled and ranked:
			// 1x→1, 2x 2x 2y→3, 3x 3y→5.5, 4y→7, 5y→8. Rx = 1+3+3+5.5 =
			// 12.5, Ux = 12.5 - 4·5/2 = 2.5. Mean 4·4/2 = 8; ties 3 and 2,
			// Σ(t³-t) = 24+6 = 30; var = 16/12·(9 - 30/56) = 11.2857...;
			// z = (|2.5-8| - 0.5)/√var = 1.48835; p = erfc(z/√2).
			// R: wilcox.test(c(1,2,2,3), c(2,3,4,5)) gives p = 0.1367.
			name: "ties", x: []float64{1, 2, 2, 3}, y: []float64{2, 3, 4, 5},
			u: 2.5, p: 0.13665824773814753, tol: 1e-12, exact: false,
		},
		{
			name: "all tied", x: []float64{1, 1, 1}, y: []float64{1, 1, 1},
			u: 4.5, p: 1, tol: 0, exact: false,
		},
		{
			name: "identical without ties", x: []float64{1, 4}, y: []float64{2, 3},
			u: 2, p: 1, tol: 0, exact: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mannWhitney(tt.x, tt.y)
			if got.U != tt.u || got.Exact != tt.exact || math.Abs(got.P-tt.p) > tt.tol {
				t.Errorf("mannWhitney = %+v, want U %v, p %v (±%v), exact %v", got, tt.u, tt.p, tt.tol, tt.exact)
			}
		})
	}
}

func TestMannWhitneyEmpty(t *testing.T) {
	if got := mannWhitney(nil, []float64{1, 2}); !math.IsNaN(got.P) {
		t.Errorf("mannWhitney(nil, ...) p = %v, want NaN", got.P)
	}
}

// TestMannWhitneyExactByEnumeration checks the exact p-values against a
// brute force: every way of splitting the pooled values into groups of n1
// and n2 is equally likely under the null hypothesis, and p is the share of
// splits whose U is at least as far from its mean as the observed one.
func TestMannWhitneyExactByEnumeration(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range [][2]int{{1, 4}, {3, 7}, {5, 5}, {6, 6}, {8, 4}, {7, 7}} {
		n1, n2 := size[0], size[1]
		for trial := 0; trial < 5; trial++ {
			x, y := make([]float64, n1), make([]float64, n2)
			for i := range x {
				x[i] = rng.Float64()
			}
			for i := range y {
				y[i] = rng.Float64() + 0.3*float64(trial)/4 // from no shift to a clear one
			}
			got := mannWhitney(x, y)
			if !got.Exact {
				t.Fatalf("%d+%d without ties: not exact", n1, n2)
			}
			if want := enumerateP(x, y); math.Abs(got.P-want) > 1e-12 {
				t.Errorf("%d+%d trial %d: p = %v, enumeration gives %v", n1, n2, trial, got.P, want)
			}
		}
	}
}

// enumerateP returns the two-sided permutation p-value of the U statistic.
func enumerateP(x, y []float64) float64 {
	pool := append(append([]float64(nil), x...), y...)
	n1, n := len(x), len(pool)
	uOf := func(inX []bool) float64 {
		var u float64
		for i := range pool {
			for j := range pool {
				if inX[i] && !inX[j] && pool[i] > pool[j] {
					u++
				}
			}
		}
		return u
	}
	mean := float64(n1*(n-n1)) / 2
	observed := make([]bool, n)
	for i := range x {
		observed[i] = true
	}
	dist := math.Abs(uOf(observed) - mean)
	var extreme, total int
	for mask := 0; mask < 1<<n; mask++ {
		inX := make([]bool, n)
		count := 0
		for i := range n {
			if mask&(1<<i) != 0 {
				inX[i] = true
				count++
			}
		}
		if count != n1 {
			continue
		}
		total++
		if math.Abs(uOf(inX)-mean) >= dist-1e-9 {
			extreme++
		}
	}
	return float64(extreme) / float64(total)
}

func TestMannWhitneyLargeSamples(t *testing.T) {
	// Beyond uTestExactMax the normal approximation takes over.
	var x, y []float64
	for i := range 60 {
		x = append(x, float64(i))
		y = append(y, float64(i)+100)
	}
	got := mannWhitney(x, y)
	if got.Exact || got.U != 0 || got.P > 1e-15 {
		t.Errorf("60+60 separated: %+v, want normal approximation, U 0, p ≈ 0", got)
	}
	// At the limit, exact, and the CDF sums to one.
	if p := uExactCDF(uTestExactMax, uTestExactMax, uTestExactMax*uTestExactMax); math.Abs(p-1) > 1e-12 {
		t.Errorf("P(U ≤ max) = %v, want 1", p)
	}
}
