// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co
// SPDX-FileContributor: mochi-co

package mqtt

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Inflight is a map of InflightMessage keyed on packet id.
type Inflight struct {
	sync.RWMutex
	internal            map[uint16]packets.Packet // internal contains the inflight packets
	receiveQuota        int32                     // remaining inbound qos quota for flow control
	sendQuota           int32                     // remaining outbound qos quota for flow control
	maximumReceiveQuota int32                     // maximum allowed receive quota
	maximumSendQuota    int32                     // maximum allowed send quota

	// fleetcert: outbound publishes waiting for send quota (those stored
	// with Expiry -1), in the order they began to wait. waiting holds each
	// by packet id, as it will be sent, with the sequence number of its
	// entry in queue; queue may hold stale entries (deleted or sent since),
	// skipped when met. Guarded by the mutex; waitingN mirrors len(waiting).
	waiting  map[uint16]waitingPacket
	queue    []waitingEntry
	seq      uint64
	waitingN atomic.Int32
}

type waitingPacket struct {
	seq uint64
	pk  packets.Packet
}

type waitingEntry struct {
	seq uint64
	id  uint16
}

// NewInflights returns a new instance of an Inflight packets map.
func NewInflights() *Inflight {
	return &Inflight{
		internal: map[uint16]packets.Packet{},
		waiting:  map[uint16]waitingPacket{},
	}
}

// Set adds or updates an inflight packet by packet id.
func (i *Inflight) Set(m packets.Packet) bool {
	i.Lock()
	defer i.Unlock()

	_, ok := i.internal[m.PacketID]
	i.internal[m.PacketID] = m
	// fleetcert: a publish stored with Expiry -1 waits for send quota,
	// behind those already waiting; one stored otherwise does not wait.
	if m.FixedHeader.Type == packets.Publish && m.Expiry < 0 {
		if _, w := i.waiting[m.PacketID]; !w {
			send := m
			send.Expiry = 0
			i.enqueue(send)
		}
	} else {
		i.unwait(m.PacketID)
	}
	return !ok
}

// enqueue makes pk wait for send quota, last. The caller holds the lock.
func (i *Inflight) enqueue(pk packets.Packet) {
	if i.waiting == nil {
		i.waiting = map[uint16]waitingPacket{}
	}
	i.seq++
	i.waiting[pk.PacketID] = waitingPacket{seq: i.seq, pk: pk}
	i.queue = append(i.queue, waitingEntry{seq: i.seq, id: pk.PacketID})
	i.waitingN.Store(int32(len(i.waiting)))
}

// unwait removes id from the waiting publishes. The caller holds the lock.
func (i *Inflight) unwait(id uint16) {
	if _, ok := i.waiting[id]; !ok {
		return
	}
	delete(i.waiting, id)
	i.waitingN.Store(int32(len(i.waiting)))
	if len(i.queue) > 2*len(i.waiting)+64 { // mostly stale: compact
		q := i.queue[:0]
		for _, e := range i.queue {
			if w, ok := i.waiting[e.id]; ok && w.seq == e.seq {
				q = append(q, e)
			}
		}
		clear(i.queue[len(q):])
		i.queue = q
	}
}

// Waiting returns the number of outbound publishes waiting for send quota.
func (i *Inflight) Waiting() int {
	return int(i.waitingN.Load())
}

// hasSendQuota reports whether a publish may be sent now: quota is left,
// or the client set no Receive Maximum (no flow control).
func (i *Inflight) hasSendQuota() bool {
	return atomic.LoadInt32(&i.sendQuota) > 0 || atomic.LoadInt32(&i.maximumSendQuota) == 0
}

// Admit adds the outbound publish m, whose packet id is unused. If the
// send quota allows and no publish is waiting before it, it takes quota
// for m and calls send(m) under the lock, so that publishes reach send
// in the order they were admitted, and reports true. Otherwise, or if
// send refuses m (a full queue), m waits for quota behind those waiting
// (stored with Expiry -1, as Set does), and Admit reports false.
func (i *Inflight) Admit(m packets.Packet, send func(packets.Packet) bool) (sent bool) {
	i.Lock()
	defer i.Unlock()

	if len(i.waiting) == 0 && i.hasSendQuota() && send(m) {
		i.internal[m.PacketID] = m
		i.DecreaseSendQuota()
		return true
	}

	held := m
	held.Expiry = -1
	i.internal[m.PacketID] = held
	i.enqueue(m)
	return false
}

// SendWaiting gives the oldest waiting publish to send, under the lock,
// if the send quota allows, and takes quota for it. It reports whether
// it did: false when none waits, no quota is left, or send refused it
// (it then stays first).
func (i *Inflight) SendWaiting(send func(packets.Packet) bool) bool {
	i.Lock()
	defer i.Unlock()

	for len(i.queue) > 0 {
		e := i.queue[0]
		w, ok := i.waiting[e.id]
		if !ok || w.seq != e.seq {
			i.queue[0] = waitingEntry{}
			i.queue = i.queue[1:] // stale: deleted, or sent, since
			continue
		}
		if !i.hasSendQuota() || !send(w.pk) {
			return false
		}
		i.queue[0] = waitingEntry{}
		i.queue = i.queue[1:]
		delete(i.waiting, e.id)
		i.waitingN.Store(int32(len(i.waiting)))
		i.internal[e.id] = w.pk
		i.DecreaseSendQuota()
		return true
	}
	return false
}

// Get returns an inflight packet by packet id.
func (i *Inflight) Get(id uint16) (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()

	if m, ok := i.internal[id]; ok {
		return m, true
	}

	return packets.Packet{}, false
}

// Len returns the size of the inflight messages map.
func (i *Inflight) Len() int {
	i.RLock()
	defer i.RUnlock()
	return len(i.internal)
}

// Clone returns a new instance of Inflight with the same message data.
// This is used when transferring inflights from a taken-over session.
func (i *Inflight) Clone() *Inflight {
	c := NewInflights()
	i.RLock()
	defer i.RUnlock()
	for k, v := range i.internal {
		c.internal[k] = v
	}
	for _, e := range i.queue { // fleetcert: the publishes waiting, in order
		if w, ok := i.waiting[e.id]; ok && w.seq == e.seq {
			c.enqueue(w.pk)
		}
	}
	return c
}

// GetAll returns all the inflight messages.
func (i *Inflight) GetAll(immediate bool) []packets.Packet {
	i.RLock()
	defer i.RUnlock()

	m := []packets.Packet{}
	for _, v := range i.internal {
		if !immediate || (immediate && v.Expiry < 0) {
			m = append(m, v)
		}
	}

	// fleetcert: in the order they were sent ([MQTT-4.6.0-1] when resent):
	// Created is in whole seconds (and was compared as uint16, which wraps
	// every 18 hours); packet ids, given in turn, order those of a second.
	sort.Slice(m, func(i, j int) bool {
		if m[i].Created != m[j].Created {
			return m[i].Created < m[j].Created
		}
		return m[i].PacketID < m[j].PacketID
	})

	return m
}

// NextImmediate returns the next inflight packet which is indicated to be sent immediately.
// This typically occurs when the quota has been exhausted, and we need to wait until new quota
// is free to continue sending.
func (i *Inflight) NextImmediate() (packets.Packet, bool) {
	// fleetcert: GetAll takes the read lock itself. Taking it here as well
	// deadlocked when a writer (Set, from a publisher delivering to this
	// client) queued between the two read locks (see FLEETCERT.md).
	m := i.GetAll(true)
	if len(m) > 0 {
		return m[0], true
	}

	return packets.Packet{}, false
}

// Delete removes an in-flight message from the map. Returns true if the message existed.
func (i *Inflight) Delete(id uint16) bool {
	i.Lock()
	defer i.Unlock()

	_, ok := i.internal[id]
	delete(i.internal, id)
	i.unwait(id) // fleetcert

	return ok
}

// TakeRecieveQuota reduces the receive quota by 1.
func (i *Inflight) DecreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) > 0 {
		atomic.AddInt32(&i.receiveQuota, -1)
	}
}

// TakeRecieveQuota increases the receive quota by 1.
func (i *Inflight) IncreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) < atomic.LoadInt32(&i.maximumReceiveQuota) {
		atomic.AddInt32(&i.receiveQuota, 1)
	}
}

// ResetReceiveQuota resets the receive quota to the maximum allowed value.
func (i *Inflight) ResetReceiveQuota(n int32) {
	atomic.StoreInt32(&i.receiveQuota, n)
	atomic.StoreInt32(&i.maximumReceiveQuota, n)
}

// DecreaseSendQuota reduces the send quota by 1.
func (i *Inflight) DecreaseSendQuota() {
	if atomic.LoadInt32(&i.sendQuota) > 0 {
		atomic.AddInt32(&i.sendQuota, -1)
	}
}

// IncreaseSendQuota increases the send quota by 1.
func (i *Inflight) IncreaseSendQuota() {
	if atomic.LoadInt32(&i.sendQuota) < atomic.LoadInt32(&i.maximumSendQuota) {
		atomic.AddInt32(&i.sendQuota, 1)
	}
}

// ResetSendQuota resets the send quota to the maximum allowed value.
func (i *Inflight) ResetSendQuota(n int32) {
	atomic.StoreInt32(&i.sendQuota, n)
	atomic.StoreInt32(&i.maximumSendQuota, n)
}
