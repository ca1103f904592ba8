//go:build linux || darwin

package adapter_test

import (
	"testing"

	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
	"github.com/stretchr/testify/require"
)

// TestSharedBatchesKeepWhatEachSequenceKeepsAlone reads two prompts in shared batches (llama-server's
// slots, one KV stream each) and each prompt alone, in the same chunks and with the default
// observation schedule: each sequence keeps the same positions either way, for the policy that
// reads keys and one that reads attention, so that what one slot keeps never depends on what the
// others are doing.
func TestSharedBatchesKeepWhatEachSequenceKeepsAlone(t *testing.T) {
	m := model(t)
	all := samplePrompt(t, m)
	prompts := [][]int32{all[:320], all[320:640]}
	const budget, chunk = 128, 32
	kept := func(policy keyformer.Policy, ids []int32) map[int32][]int32 {
		cfg := config(m, policy, keyformer.Tokens(budget))
		cfg.Observe = keyformer.DefaultConfig(cfg.Shape).Observe
		tr, err := keyformer.NewTracker(*cfg)
		require.NoError(t, err)
		ad, err := adapter.New(m.Lib(), tr, adapter.Options{})
		require.NoError(t, err)
		ctx, err := m.NewContext(llama.ContextOptions{NCtx: 2 * (budget + 2*chunk + 64), NBatch: 2 * chunk,
			NUbatch: 2 * chunk, NThreads: 2, Eval: ad.Eval,
			Tweak: func(p *llama.ContextParams) { p.NSeqMax, p.KVUnified = 2, false }})
		require.NoError(t, err)
		defer ctx.Free()
		require.NoError(t, ad.Attach(ctx.Ptr()))
		for done := 0; done < len(prompts[0]); done += chunk {
			var tokens, pos, seqs []int32
			var out []bool
			for _, id := range ids {
				for i := done; i < done+chunk; i++ {
					tokens, pos, seqs, out = append(tokens, prompts[id][i]), append(pos, int32(i)), append(seqs, id), append(out, false)
				}
			}
			require.NoError(t, ad.SetBatch(seqs))
			require.NoError(t, ctx.DecodeBatch(tokens, pos, seqs, out))
			for _, id := range ids {
				_, err := ad.Apply(id)
				require.NoError(t, err)
			}
		}
		res := map[int32][]int32{}
		for _, id := range ids {
			seq, _ := ad.Tracker().Sequence(id)
			for _, tok := range seq.Tokens() {
				res[id] = append(res[id], tok.Pos)
			}
		}
		return res
	}
	for _, p := range []keyformer.Policy{keyformer.PolicyKeyDiff, keyformer.PolicyH2O} {
		both := kept(p, []int32{0, 1})
		for _, id := range []int32{0, 1} {
			require.Equal(t, kept(p, []int32{id})[id], both[id], "%s, sequence %d", p, id)
		}
	}
}
