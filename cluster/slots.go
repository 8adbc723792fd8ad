package cluster

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Slots counts the concurrent recordings of each portal client across all
// recorders on one Redis: a recording holds a lease that its recorder
// renews; a recorder that dies lets its leases lapse.
type Slots struct {
	rdb   *redis.Client
	lease time.Duration
}

const keySlotsPrefix = "vclass:slots:" // sorted set per client: recording id, scored by lease end (unix ms)

// NewSlots connects (lazily) to the Redis at url; leases last lease.
func NewSlots(url string, lease time.Duration) (*Slots, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("cluster: VCLASS_REDIS_URL: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = opTimeout, opTimeout, opTimeout
	opts.MaxRetries = 1
	quietRedis.Do(func() { redis.SetLogger(discard{}) })
	return &Slots{rdb: redis.NewClient(opts), lease: lease}, nil
}

// Close disconnects.
func (s *Slots) Close() { s.rdb.Close() }

// acquireScript takes a slot if fewer than limit live leases exist.
// KEYS: the client's set; ARGV: id, limit, now (ms), lease end (ms).
// Returns 1 and the holders, or 0 and the holders.
var acquireScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 86400000)
  return {1, redis.call('ZRANGE', KEYS[1], 0, -1)}
end
return {0, redis.call('ZRANGE', KEYS[1], 0, -1)}`)

// Acquire takes one of client's limit slots for recording id. When all
// are held it returns false and the recordings holding them.
func (s *Slots) Acquire(ctx context.Context, client, id string, limit int) (bool, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	now := time.Now()
	res, err := acquireScript.Run(ctx, s.rdb, []string{keySlotsPrefix + client}, id, limit,
		now.UnixMilli(), now.Add(s.lease).UnixMilli()).Slice()
	if err != nil || len(res) != 2 {
		return false, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	ok, _ := res[0].(int64)
	var holders []string
	if list, is := res[1].([]any); is {
		for _, h := range list {
			if s, is := h.(string); is {
				holders = append(holders, s)
			}
		}
	}
	return ok == 1, holders, nil
}

// Renew extends the leases of client's recordings ids, and takes those
// Redis lost (it restarted without its data) again: a running recording
// holds its slot. The caller must not renew a recording it has released.
func (s *Slots) Renew(ctx context.Context, client string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	end := float64(time.Now().Add(s.lease).UnixMilli())
	zs := make([]redis.Z, len(ids))
	for i, id := range ids {
		zs[i] = redis.Z{Score: end, Member: id}
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, keySlotsPrefix+client, zs...)
		p.PExpire(ctx, keySlotsPrefix+client, 24*time.Hour)
		return nil
	})
	return err
}

// Release frees the slots of client's recordings ids.
func (s *Slots) Release(ctx context.Context, client string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	return s.rdb.ZRem(ctx, keySlotsPrefix+client, members...).Err()
}

// Used counts client's live leases.
func (s *Slots) Used(ctx context.Context, client string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	n, err := s.rdb.ZCount(ctx, keySlotsPrefix+client, strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf").Result()
	return int(n), err
}
