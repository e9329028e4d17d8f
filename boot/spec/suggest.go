package spec

// Suggest returns the entry of valid nearest to name, for "did you mean"
// hints, or "" when nothing is near enough. Near enough means an edit
// distance of at most max(2, len(name)/3), and less than len(name): a
// one-letter typo of a short word is a match, but replacing every letter of
// "ab" to reach "go" is not. Ties go to the earlier entry of valid, so
// callers control preference by ordering.
func Suggest(name string, valid []string) string {
	limit := max(2, len([]rune(name))/3)
	best, bestDist := "", limit+1
	for _, v := range valid {
		d := editDistance(name, v)
		if d < bestDist && d < len([]rune(name)) {
			best, bestDist = v, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance extended with transposition of
// adjacent characters (optimal string alignment), because swapped letters
// ("restrat" for "restart") are among the most common typos and should cost
// one edit, not two.
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// d[i][j] is the distance between s[:i] and t[:j].
	d := make([][]int, len(s)+1)
	for i := range d {
		d[i] = make([]int, len(t)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(s); i++ {
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			d[i][j] = min(
				d[i-1][j]+1,      // deletion
				d[i][j-1]+1,      // insertion
				d[i-1][j-1]+cost, // substitution
			)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1) // transposition
			}
		}
	}
	return d[len(s)][len(t)]
}
