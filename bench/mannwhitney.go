package bench

import (
	"math"
	"slices"
)

// This file owns the significance test compare uses: the two-sided
// Mann–Whitney U test (Wilcoxon rank-sum test). It is the test benchstat
// uses: it assumes nothing about the distribution, and boot times are far
// from normal (a long right tail from host noise).

// uTest is the result of a two-sided Mann–Whitney U test.
type uTest struct {
	// U is min(Ux, Uy), where Ux counts the pairs (x, y) with x > y, plus
	// one half per tie, and Ux + Uy = len(x)·len(y).
	U float64
	// P is the two-sided p-value: the probability, if x and y came from the
	// same distribution, of a U at least this far from its mean.
	P float64
	// Exact tells how P was computed: from the exact distribution of U, or
	// from the normal approximation.
	Exact bool
}

// uTestExactMax is the largest sample size for the exact distribution.
// Like R's wilcox.test (which uses 50), we compute it whenever it is cheap
// (here at most 2·51·1251 counts) rather than at benchstat's ~10: it is
// exact, and the normal approximation is poor in the tails at small n.
const uTestExactMax = 50

// mannWhitney tests whether x and y come from the same distribution.
//
// Without ties and with both samples of at most uTestExactMax values, P is
// exact: 2·P(U ≤ u), from counting the arrangements of the two samples
// (capped at 1). Otherwise P comes from the normal approximation of U,
// with its variance corrected for ties and a continuity correction of 0.5
// (as R's wilcox.test(correct=TRUE)); when every value is tied, P = 1.
// An empty sample gives P = NaN: there is nothing to test.
func mannWhitney(x, y []float64) uTest {
	n1, n2 := len(x), len(y)
	if n1 == 0 || n2 == 0 {
		return uTest{P: math.NaN()}
	}
	rankSumX, tieTerm := rankSum(x, y)
	ux := rankSumX - float64(n1*(n1+1))/2
	u := math.Min(ux, float64(n1*n2)-ux)

	if tieTerm == 0 && n1 <= uTestExactMax && n2 <= uTestExactMax {
		return uTest{U: u, P: math.Min(1, 2*uExactCDF(n1, n2, int(u))), Exact: true}
	}

	n := float64(n1 + n2)
	mean := float64(n1*n2) / 2
	variance := float64(n1*n2) / 12 * ((n + 1) - tieTerm/(n*(n-1)))
	if variance <= 0 {
		return uTest{U: u, P: 1}
	}
	z := math.Max(0, math.Abs(ux-mean)-0.5) / math.Sqrt(variance)
	return uTest{U: u, P: math.Erfc(z / math.Sqrt2)}
}

// rankSum ranks x and y together (tied values get the mean of their ranks)
// and returns the sum of the ranks of x, and Σ(t³-t) over the groups of t
// tied values, which the variance of U needs.
func rankSum(x, y []float64) (sumX, tieTerm float64) {
	type obs struct {
		v   float64
		inX bool
	}
	all := make([]obs, 0, len(x)+len(y))
	for _, v := range x {
		all = append(all, obs{v, true})
	}
	for _, v := range y {
		all = append(all, obs{v, false})
	}
	slices.SortFunc(all, func(a, b obs) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		// Positions i..j-1 hold ranks i+1..j; each gets their mean.
		rank := float64(i+1+j) / 2
		for _, o := range all[i:j] {
			if o.inX {
				sumX += rank
			}
		}
		if t := float64(j - i); t > 1 {
			tieTerm += t*t*t - t
		}
		i = j
	}
	return sumX, tieTerm
}

// uExactCDF returns P(U ≤ u) for samples of n1 and n2 distinct values from
// the same distribution, where all C(n1+n2, n1) orders are equally likely.
//
// The number f(m, n, k) of orders of m x's and n y's with Ux = k follows
// from where the largest value lies: if it is an x it beats all n y's, so
// f(m, n, k) = f(m-1, n, k-n) + f(m, n-1, k), with f(0, n, k) and f(m, 0, k)
// 1 for k = 0 and 0 otherwise. Only k ≤ u matter, and row m needs only
// row m-1, so two rows of (n2+1)·(u+1) counts suffice.
func uExactCDF(n1, n2, u int) float64 {
	if u < 0 {
		return 0
	}
	row := func() [][]float64 {
		r := make([][]float64, n2+1)
		for n := range r {
			r[n] = make([]float64, u+1)
		}
		return r
	}
	prev, cur := row(), row()
	for n := 0; n <= n2; n++ {
		prev[n][0] = 1 // m = 0: only U = 0
	}
	for m := 1; m <= n1; m++ {
		for n := 0; n <= n2; n++ {
			for k := 0; k <= u; k++ {
				var c float64
				if k >= n {
					c = prev[n][k-n]
				}
				if n > 0 {
					c += cur[n-1][k]
				}
				cur[n][k] = c
			}
		}
		prev, cur = cur, prev
	}
	var count float64
	for _, c := range prev[n2] {
		count += c
	}
	return count / binomial(n1+n2, n1)
}

// binomial returns C(n, k) as a float64; exact up to 2⁵³, and within a few
// ulps beyond, which is all a p-value needs.
func binomial(n, k int) float64 {
	c := 1.0
	for i := 1; i <= k; i++ {
		c = c * float64(n-k+i) / float64(i)
	}
	return c
}

// MannWhitneyP is the two-sided p-value of the Mann–Whitney U test of x
// against y (see mannWhitney): NaN when either is empty.
func MannWhitneyP(x, y []float64) float64 { return mannWhitney(x, y).P }
