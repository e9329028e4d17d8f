package runtimedir

import "github.com/kitrun/kitrun/boot/procid"

// liveMembers: zombies do not count (see procid.GroupHasLiveMembers).
func liveMembers(pgid int) bool { return procid.GroupHasLiveMembers(pgid) }
