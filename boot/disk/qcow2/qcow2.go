// Package qcow2 writes a raw disk image as a QEMU qcow2 (version 3) file,
// as QEMU's docs/interop/qcow2.txt describes it: 64 KiB clusters, one L1
// table, L2 tables only for the 512 MiB ranges that hold data, 16-bit
// refcounts, no compression, no backing file. Clusters of zeros are left
// unallocated, so a sparse image gives a small file.
//
// The layout is computed from a scan of the image before anything is
// written (see rawscan), so the file is written front to back:
//
//	header | L1 table | refcount table | refcount blocks | L2 tables | data clusters
package qcow2

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/kitrun/kitrun/boot/disk/internal/rawscan"
)

const (
	clusterBits  = 16
	clusterSize  = 1 << clusterBits
	l2Entries    = clusterSize / 8 // 8192 entries: one L2 table maps 512 MiB
	refcountBits = 16
	rbEntries    = clusterSize * 8 / refcountBits // refcounts per refcount block
	headerLength = 104                            // version 3 header without optional fields

	// copied marks an L1/L2 entry whose cluster has refcount exactly one:
	// true of every cluster here, as nothing is shared.
	copied = 1 << 63
)

// Guest clusters are rawscan's units (this fails to compile otherwise).
var _ [0]struct{} = [clusterSize - rawscan.Unit]struct{}{}

// layout is where everything goes in the file, in clusters.
type layout struct {
	VirtualSize int64
	L1Entries   int64
	L1Clusters  int64
	RTClusters  int64 // refcount table
	RBClusters  int64 // refcount blocks
	L2Clusters  int64
	DataCluster int64 // allocated data clusters
}

func (l layout) l1Start() int64   { return 1 }
func (l layout) rtStart() int64   { return l.l1Start() + l.L1Clusters }
func (l layout) rbStart() int64   { return l.rtStart() + l.RTClusters }
func (l layout) l2Start() int64   { return l.rbStart() + l.RBClusters }
func (l layout) dataStart() int64 { return l.l2Start() + l.L2Clusters }

// HostClusters is the number of clusters in the file.
func (l layout) HostClusters() int64 { return l.dataStart() + l.DataCluster }

// FileSize is the size of the file written.
func (l layout) FileSize() int64 { return l.HostClusters() * clusterSize }

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func plan(m *rawscan.Map) layout {
	l := layout{VirtualSize: m.Size, DataCluster: m.UsedUnits()}
	guestClusters := m.Units()
	l.L1Entries = ceilDiv(guestClusters, l2Entries)
	l.L1Clusters = ceilDiv(l.L1Entries*8, clusterSize)
	for i := int64(0); i < l.L1Entries; i++ {
		if m.UsedIn(i*l2Entries*clusterSize, l2Entries*clusterSize) {
			l.L2Clusters++
		}
	}
	// The refcount structures count themselves: grow them until they cover
	// every cluster of the file.
	for {
		n := l.HostClusters()
		rb := ceilDiv(n, rbEntries)
		rt := ceilDiv(rb*8, clusterSize)
		if rb == l.RBClusters && rt == l.RTClusters {
			return l
		}
		l.RBClusters, l.RTClusters = rb, rt
	}
}

// Write writes the size-byte raw image read from src to w as qcow2.
func Write(ctx context.Context, w io.Writer, src io.ReaderAt, size int64) error {
	m, err := rawscan.Scan(ctx, src, size)
	if err != nil {
		return err
	}
	l := plan(m)
	if l.L1Entries*8 > 32<<20 {
		// QEMU's limit on the L1 table: 32 MiB, i.e. 2 PiB of disk.
		return fmt.Errorf("raw disk image of %d bytes is too large for qcow2 with 64 KiB clusters", size)
	}
	out := &rawscan.Writer{W: w}
	cluster := make([]byte, clusterSize)

	// Header.
	h := cluster
	clear(h)
	copy(h[0:], "QFI\xfb")
	be := binary.BigEndian
	be.PutUint32(h[4:], 3)
	be.PutUint32(h[20:], clusterBits)
	be.PutUint64(h[24:], uint64(size))
	be.PutUint32(h[36:], uint32(l.L1Entries))
	be.PutUint64(h[40:], uint64(l.l1Start()*clusterSize))
	be.PutUint64(h[48:], uint64(l.rtStart()*clusterSize))
	be.PutUint32(h[56:], uint32(l.RTClusters))
	be.PutUint32(h[96:], 4) // refcount_order: 2^4 = 16-bit refcounts
	be.PutUint32(h[100:], headerLength)
	// Bytes 104.. are zero: the header extension area ends at once.
	if _, err := out.Write(h); err != nil {
		return err
	}

	// L1 table: the k-th L2 table written serves the k-th L1 entry whose
	// range holds data.
	if err := out.Expect(l.l1Start()*clusterSize, "L1 table"); err != nil {
		return err
	}
	next := l.l2Start()
	if err := writeTable(out, cluster, l.L1Clusters, l.L1Entries, func(i int64) uint64 {
		if !m.UsedIn(i*l2Entries*clusterSize, l2Entries*clusterSize) {
			return 0
		}
		e := uint64(next*clusterSize) | copied
		next++
		return e
	}); err != nil {
		return err
	}

	// Refcount table and blocks: clusters [0, HostClusters) have refcount 1.
	if err := out.Expect(l.rtStart()*clusterSize, "refcount table"); err != nil {
		return err
	}
	if err := writeTable(out, cluster, l.RTClusters, l.RBClusters, func(i int64) uint64 {
		return uint64((l.rbStart() + i) * clusterSize)
	}); err != nil {
		return err
	}
	n := l.HostClusters()
	for b := int64(0); b < l.RBClusters; b++ {
		clear(cluster)
		for j := int64(0); j < rbEntries && b*rbEntries+j < n; j++ {
			be.PutUint16(cluster[2*j:], 1)
		}
		if _, err := out.Write(cluster); err != nil {
			return err
		}
	}

	// L2 tables: the k-th used guest cluster is the k-th data cluster.
	if err := out.Expect(l.l2Start()*clusterSize, "L2 tables"); err != nil {
		return err
	}
	data := l.dataStart()
	for i := int64(0); i < l.L1Entries; i++ {
		if !m.UsedIn(i*l2Entries*clusterSize, l2Entries*clusterSize) {
			continue
		}
		clear(cluster)
		for j := int64(0); j < l2Entries; j++ {
			if m.Used(i*l2Entries + j) {
				be.PutUint64(cluster[8*j:], uint64(data*clusterSize)|copied)
				data++
			}
		}
		if _, err := out.Write(cluster); err != nil {
			return err
		}
	}

	// Data clusters, in guest order; a partial last cluster is padded.
	if err := out.Expect(l.dataStart()*clusterSize, "data clusters"); err != nil {
		return err
	}
	for i := int64(0); i < m.Units(); i++ {
		if !m.Used(i) {
			continue
		}
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		b, err := rawscan.ReadUnit(src, size, i, cluster)
		if err != nil {
			return err
		}
		clear(cluster[len(b):])
		if _, err := out.Write(cluster); err != nil {
			return err
		}
	}
	return out.Expect(l.FileSize(), "end of file")
}

// writeTable writes a table of entries 64-bit big-endian entries filling
// clusters clusters, entry i being at(i) (called in order).
func writeTable(out io.Writer, buf []byte, clusters, entries int64, at func(i int64) uint64) error {
	per := int64(clusterSize / 8)
	for c := int64(0); c < clusters; c++ {
		clear(buf)
		for j := int64(0); j < per && c*per+j < entries; j++ {
			binary.BigEndian.PutUint64(buf[8*j:], at(c*per+j))
		}
		if _, err := out.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
