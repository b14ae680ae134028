package apiserver

import (
	"bytes"
	"encoding/binary"

	"google.golang.org/protobuf/encoding/protowire"
)

// storedWithResourceVersion returns the stored value of an object (enveloped
// protobuf, as encode writes it: resourceVersion empty) with its
// resourceVersion set to rv, or false when the value is not in that form.
// The result is byte for byte what encodeProtobuf writes for the value
// decoded with that resourceVersion, without decoding and encoding it:
// a watch sends each stored value to its protobuf watchers this way.
//
// The envelope is a runtime.Unknown (1: typeMeta, 2: raw, ...); raw holds
// the object, whose field 1 is its ObjectMeta, where resourceVersion is
// field 6. Kubernetes' generated marshalling writes every string field,
// empty ones too, in field order, so the empty resourceVersion is there
// to be replaced.
func storedWithResourceVersion(stored []byte, rv string) ([]byte, bool) {
	if !bytes.HasPrefix(stored, protobufPrefix) {
		return nil, false
	}
	envelope := stored[len(protobufPrefix):]
	rawLen, rawStart, rawEnd, ok := bytesField(envelope, 2)
	if !ok {
		return nil, false
	}
	raw := envelope[rawStart:rawEnd]
	metaLen, metaStart, metaEnd, ok := bytesField(raw, 1)
	if !ok {
		return nil, false
	}
	objectMeta := raw[metaStart:metaEnd]
	rvLen, rvStart, rvEnd, ok := bytesField(objectMeta, 6)
	if !ok || rvStart != rvEnd {
		return nil, false // no empty resourceVersion to fill in
	}
	// Lengths from the inside out: the resourceVersion, the ObjectMeta
	// holding it, the raw object holding that.
	grow := len(rv) + protowire.SizeVarint(uint64(len(rv))) - protowire.SizeVarint(0)
	newMeta := len(objectMeta) + grow
	newRaw := len(raw) + grow + protowire.SizeVarint(uint64(newMeta)) - protowire.SizeVarint(uint64(len(objectMeta)))

	out := make([]byte, 0, len(stored)+grow+2*binary.MaxVarintLen64)
	out = append(out, protobufPrefix...)
	out = append(out, envelope[:rawLen]...)
	out = protowire.AppendVarint(out, uint64(newRaw))
	out = append(out, raw[:metaLen]...)
	out = protowire.AppendVarint(out, uint64(newMeta))
	out = append(out, objectMeta[:rvLen]...)
	out = protowire.AppendString(out, rv)
	out = append(out, objectMeta[rvEnd:]...)
	out = append(out, raw[metaEnd:]...)
	out = append(out, envelope[rawEnd:]...)
	return out, true
}

// bytesField finds the first occurrence of field num, of the bytes wire
// type, in a message: where its length prefix starts, and where its
// content starts and ends.
func bytesField(msg []byte, num protowire.Number) (lenStart, start, end int, ok bool) {
	for i := 0; i < len(msg); {
		n, typ, tagLen := protowire.ConsumeTag(msg[i:])
		if tagLen < 0 {
			return 0, 0, 0, false
		}
		i += tagLen
		if n == num && typ == protowire.BytesType {
			v, vLen := protowire.ConsumeBytes(msg[i:])
			if vLen < 0 {
				return 0, 0, 0, false
			}
			return i, i + vLen - len(v), i + vLen, true
		}
		skip := protowire.ConsumeFieldValue(n, typ, msg[i:])
		if skip < 0 {
			return 0, 0, 0, false
		}
		i += skip
	}
	return 0, 0, 0, false
}
