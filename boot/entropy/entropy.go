// Package entropy feeds host-provided randomness to a guest kernel: it owns
// the RNDADDENTROPY and RNDRESEEDCRNG ioctls that kitsshd (the per-boot
// seed) and kitinit (the fresh seed after a snapshot restore) both need.
package entropy
