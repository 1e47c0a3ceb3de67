"""Roofline timing: each phase takes the longer of moving its bytes and doing its FLOPs, at the
achieved (efficiency-scaled) bandwidth and compute of every device it crosses.

Layer splits (llama.cpp -ngl, several GPUs) run the devices one after the other, so their times
add; tensor parallelism runs them side by side and adds two all-reduces per layer.
"""

from __future__ import annotations

from waveidp.catalog._models import Hardware
from waveidp.sizing._cpu import CpuRates, cpu_rates
from waveidp.sizing._data import rules
from waveidp.sizing._deployment import Deployment
from waveidp.sizing._efficiency import Efficiency, efficiency_of
from waveidp.sizing._memory import MemoryPlan, Placement, kv_bytes, kv_element_bytes, plan_memory

_FLOPS_FALLBACK = ("fp16", "bf16", "fp32", "int8", "tf32")
_ACT_BYTES = 2  # activations cross devices in 16-bit
# llama.cpp's CUDA backend runs a decode batch of up to 8 tokens through its matrix-vector kernels
# (ggml-cuda/mmvq.cuh MMVQ_MAX_BATCH_SIZE) and FlashAttention's vector kernel; larger batches take its
# tensor-core kernels (MMQ), which still unpack each weight tile on the CUDA cores
_VECTOR_BATCH_MAX = 8


def peak_flops(hw: Hardware, dtype: str) -> float:
    """Dense FLOP/s of `hw` for `dtype`, falling back to the widest format it lists."""
    flops = hw.dense_flops
    if dtype in flops:
        return flops[dtype]
    for alt in _FLOPS_FALLBACK:
        if alt in flops:
            return flops[alt]
    return max(flops.values(), default=float("inf"))


class PerfModel:
    """Predicted prefill and decode times of a deployment; cheap enough to call per request."""

    def __init__(
        self,
        d: Deployment,
        eff: Efficiency | None = None,
        *,
        plan: MemoryPlan | None = None,
        every_device: bool = False,
        physical_bound: bool = False,
    ) -> None:
        """`eff` overrides the primary device's factors (or every device's with `every_device`);
        `physical_bound` also drops the CPU thread heuristic: one core may use all the bandwidth."""
        self.d = d
        self._physical = physical_bound
        self.plan = plan or plan_memory(d)
        primary = (d.accelerators or d.devices)[0]
        self.eff = eff or efficiency_of(primary, d.engine)
        self._effs = {
            p.device.id: (
                self.eff
                if p.device.id == primary.id or (eff is not None and every_device)
                else efficiency_of(p.device, d.engine)
            )
            for p in self.plan.placements
        }
        par = rules().parallel
        # llama.cpp on a CPU: the kernel its weight format runs on that instruction-set tier
        self._cpu: dict[str, CpuRates] = {
            p.device.id: cpu_rates(
                p.device,
                d.quant.id,
                d.threads,
                self._effs[p.device.id],
                core_bandwidth=par.cpu_core_bandwidth_bytes_per_s,
                model=d.model,
            )
            for p in self.plan.placements
            if p.device.kind == "cpu" and d.engine == "llamacpp" and not physical_bound
        }
        _, self._kv_elem = kv_element_bytes(d)
        self._stages = [p for p in self.plan.placements if p.read_bytes > 0 or p.layers > 0]
        self._tp = d.splits_tensors and len(d.accelerators) > 1
        m = d.model
        self._active = m.params_per_token / m.params
        # the input embedding is a row lookup, not a matmul; the output matrix is one per token in
        # decode but, in prefill, only the last position of each sequence needs logits
        embed = m.vocab_size * m.hidden_size
        layer_params = max(0, m.params_per_token - embed * (1 if m.tied_embeddings else 2))
        self._flops_token = 2.0 * (layer_params + embed)
        self._flops_prefill_token = 2.0 * layer_params
        self._flops_logits = 2.0 * embed
        self._attn_coeff = 4.0 * m.attention_heads * m.head_dim  # QK^T and PV per layer per context token
        accel = d.accelerators[0] if d.accelerators else None
        link = (accel.interconnect or "") if accel else ""
        self._link_latency = par.allreduce_latency_s["nvlink" if "nvlink" in link.lower() else "pcie"]
        self._link_bw = (
            accel.interconnect_bandwidth_bytes_per_s if accel else None
        ) or rules().memory.host_link_bytes_per_s
        self._host_link_bw = rules().memory.host_link_bytes_per_s
        self._core_bw = par.cpu_core_bandwidth_bytes_per_s

    @property
    def runs_cpu_kernels(self) -> bool:
        """The primary device is a CPU that llama.cpp runs through the kernel table (`_cpu.py`)."""
        return (self.d.accelerators or self.d.devices)[0].id in self._cpu

    def reported_factors(self) -> tuple[float, float]:
        """(decode bandwidth, prefill compute) of the primary device as the model uses them: shares
        of the peaks, or, for llama.cpp on a CPU, the scales on its kernel table (which exceed 1.0
        where the kernel beats the table; clipping them would hide a calibration)."""
        q = self.d.quant.id
        if self.runs_cpu_kernels:
            return self.eff.decode_bandwidth, self.eff.prefill_compute
        return self.eff.decode_bandwidth_for(q), self.eff.prefill_compute_for(q)

    # ---- device rates -----------------------------------------------------------------------
    def _bandwidth(self, p: Placement) -> float:
        hw = p.device
        if hw.id in self._cpu:
            return self._cpu[hw.id].stream_bytes
        bw = hw.memory_bandwidth_bytes_per_s * self._effs[hw.id].decode_bandwidth_for(self.d.quant.id)
        if hw.kind == "cpu" and self.d.threads and not self._physical:
            bw = min(bw, self.d.threads * self._core_bw)  # a few cores already stream what DRAM gives
        return bw

    def _compute(self, p: Placement, *, decode: bool = False) -> float:
        hw = p.device
        eff = self._effs[hw.id]
        share = (
            eff.decode_compute
            if decode and eff.decode_compute is not None
            else eff.prefill_compute_for(self.d.quant.id)
        )
        flops = peak_flops(hw, self.d.quant.compute_dtype) * share
        if hw.kind == "cpu" and self.d.threads and hw.cores:
            flops *= min(1.0, self.d.threads / hw.cores)
        return flops

    def _attn_flops_per_token(self, context: int) -> float:
        m = self.d.model
        swa = m.sliding_window_layers if m.sliding_window else 0
        window = min(context, m.sliding_window or context)
        return self._attn_coeff * ((m.layers - swa) * context + swa * window)

    def _output_rows(self, p: Placement) -> float:
        """The output matrix's weight rows (one per vocabulary entry) that `p` holds."""
        return self.d.model.vocab_size * p.param_share

    def _layers(self, p: Placement) -> float:
        """The transformer layers whose work `p` does."""
        return self.d.model.layers * p.param_share

    def _allreduce_s(self, tokens: int) -> float:
        n = len(self.d.accelerators)
        if not self._tp or n < 2:
            return 0.0
        msg = tokens * self.d.model.hidden_size * _ACT_BYTES * 2 * (n - 1) / n
        return 2 * self.d.model.layers * (self._link_latency + msg / self._link_bw)

    def _combine(self, times: list[float]) -> float:
        return max(times) if self._tp else sum(times)

    # ---- public API ------------------------------------------------------------------------
    def decode_step_seconds(self, batch: int, context_tokens: int) -> float:
        """One decode step producing one token for each of `batch` sequences at mean context, as a
        server runs it: the engine's step plus the per-sequence host work (llama-server samples each
        slot over the full logits on the CPU)."""
        return self.engine_step_seconds(batch, context_tokens) + max(1, batch) * self.eff.sequence_seconds(
            self.d.model.vocab_size
        )

    def engine_step_seconds(self, batch: int, context_tokens: int) -> float:
        """The same step as the engine alone runs it, without the server's per-sequence host work:
        what llama-bench (which samples nothing) and a library loop measure."""
        batch = max(1, batch)
        ctx = max(1, context_tokens)
        kv_seq = kv_bytes(self.d.model, self._kv_elem, ctx)
        attn = self._attn_flops_per_token(ctx)
        times = []
        for p in self._stages:
            bytes_moved = p.read_bytes * self._active + batch * kv_seq * p.kv_share
            cpu = self._cpu.get(p.device.id)
            layer_s = 0.0
            if cpu is not None:
                # the layers and the output matrix run their own kernels (a GGUF often keeps the
                # output in q8_0 or q6_K: Gemma 3's is 63% of a token's weights)
                compute_s = (
                    batch * self._flops_prefill_token * p.param_share / cpu.prefill_matmul_flops(batch)
                    + cpu.logits_seconds(batch, self._flops_logits * p.param_share, self._output_rows(p))
                    + batch * attn * p.kv_share / cpu.attention_flops
                )
                # the layers' other ops run between the matmuls, not under their weight streaming
                layer_s = cpu.layer_seconds(self._layers(p), batch, decode=True)
            else:
                lanes = self._lane_flops(p)
                if lanes is not None:
                    times.append(self._kernel_seconds(p, batch, kv_seq, attn, lanes))
                    continue
                flops = batch * (self._flops_token * p.param_share + attn * p.kv_share)
                compute_s = flops / self._compute(p, decode=True)
            times.append(max(bytes_moved / self._bandwidth(p), compute_s) + layer_s)
        return self._combine(times) + self._allreduce_s(batch) + self.step_overhead_seconds()

    def _lane_flops(self, p: Placement) -> float | None:
        """The CUDA-core rate llama.cpp's decode kernels reach on `p` (`decode_lane_compute` of the
        fp32 peak), or None where the factors do not model it."""
        share = self._effs[p.device.id].decode_lane_compute_for(self.d.quant.id)
        fp32 = p.device.dense_flops.get("fp32")
        return fp32 * share if share is not None and fp32 else None

    def _kernel_seconds(self, p: Placement, batch: int, kv_seq: int, attn: float, lanes: float) -> float:
        """A decode step on a GPU as llama.cpp's kernels run it, one after the other: the matmuls
        (their weights' bytes, or their unpacking on the CUDA cores, once per step whatever the batch,
        or their tensor-core FLOPs) and then attention (its KV bytes, or its FLOPs: on the CUDA cores in
        FlashAttention's vector kernel for a batch of up to 8, on the tensor cores beyond)."""
        bandwidth, tensor = self._bandwidth(p), self._compute(p, decode=True)
        weights = self._flops_token * p.param_share
        matmuls = max(p.read_bytes * self._active / bandwidth, batch * weights / tensor, weights / lanes)
        attention_flops = batch * attn * p.kv_share
        attention = max(
            batch * kv_seq * p.kv_share / bandwidth,
            attention_flops / (lanes if batch <= _VECTOR_BATCH_MAX else tensor),
        )
        return matmuls + attention

    def step_overhead_seconds(self) -> float:
        """Fixed time per step: `step_overhead_s`, plus `step_overhead_cycles` at the primary
        device's clock where the hardware states one."""
        clock = (self.d.accelerators or self.d.devices)[0].clock_ghz
        cycles = self.eff.step_overhead_cycles / (clock * 1e9) if clock else 0.0
        return self.eff.step_overhead_s + cycles

    def weight_pass_seconds(self) -> float:
        """One more forward pass over the weights (a ubatch of a few tokens): streaming them once."""
        return self._combine([p.read_bytes * self._active / self._bandwidth(p) for p in self._stages])

    def prefill_seconds(self, prompt_tokens: int, batch: int = 1) -> float:
        """Time to process `batch` prompts of `prompt_tokens` tokens (time to first token, no queueing)."""
        n = max(1, prompt_tokens)
        batch = max(1, batch)
        m = self.d.model
        attn_total = self._attn_coeff * m.layers * n * n / 2  # causal: on average half the prompt
        accel = next((p for p in self._stages if p.role == "accelerator"), None)
        times = []
        for p in self._stages:
            layer_matmul = batch * self._flops_prefill_token * n * p.param_share
            logits = batch * self._flops_logits * p.param_share
            attention = batch * attn_total * p.kv_share
            flops = layer_matmul + logits + attention
            cpu = self._cpu.get(p.device.id)
            if cpu is not None:
                compute_s = (
                    layer_matmul / cpu.prefill_matmul_flops(n * batch)
                    + cpu.logits_seconds(batch, logits / batch, self._output_rows(p))
                    + attention / cpu.attention_flops
                    + cpu.layer_seconds(self._layers(p), n * batch, decode=False)
                )
            else:
                compute_s = flops / self._compute(p)
            t = max(compute_s, p.read_bytes / self._bandwidth(p))
            if p.role == "host" and accel is not None and n * batch >= 32 and p.layers > 0:
                # llama.cpp copies CPU-resident weights to the GPU for large batches
                t = min(t, max(p.read_bytes / self._host_link_bw, flops / self._compute(accel)))
            times.append(t)
        return self._combine(times) + self._allreduce_s(n * batch) + self.step_overhead_seconds()

    def decode_stages(self, batch: int, context_tokens: int) -> list[tuple[Placement, float, float]]:
        """(placement, bytes moved, achieved bandwidth) of each device one decode step crosses."""
        kv_seq = kv_bytes(self.d.model, self._kv_elem, max(1, context_tokens))
        return [
            (p, p.read_bytes * self._active + max(1, batch) * kv_seq * p.kv_share, self._bandwidth(p))
            for p in self._stages
        ]

    def first_token_seconds(self) -> float:
        """Fixed time from the end of a request's prefill to its first token at the client."""
        return self.eff.first_token_s

    def prefill_token_seconds(self, prompt_tokens: int) -> float:
        """One more prompt token of a `prompt_tokens`-token prompt in a batch that runs anyway: its
        compute plus the per-layer floor that small matmuls hit (`prefill_layer_token_s`)."""
        n = max(1, prompt_tokens)
        compute = (self.prefill_seconds(n, batch=2) - self.prefill_seconds(n)) / n
        return max(0.0, compute) + self.d.model.layers * self.eff.prefill_layer_token_s

    def prefill_batch_seconds(self, tokens: int, token_s: float) -> float:
        """A batch of prompt tokens alone: their compute, or one pass over the weights if longer."""
        return max(tokens * token_s + self.step_overhead_seconds(), self.prefill_seconds(1))

    def host_copy_bytes_per_s(self) -> float | None:
        """llama-server's device-to-host copy rate on its main thread (prompt cache, checkpoints)."""
        return self.eff.host_copy_bytes_per_s if self.d.engine == "llamacpp" else None

    def sequence_kv_bytes(self, tokens: int) -> int:
        return kv_bytes(self.d.model, self._kv_elem, max(0, tokens))

    def window_checkpoint_bytes(self) -> int:
        """The sliding-window layers' KV that llama-server checkpoints when it cuts a prompt."""
        m = self.d.model
        per_layer_token = 2 * m.kv_heads * m.head_dim * self._kv_elem
        return int(m.sliding_window_layers * (m.sliding_window or 0) * per_layer_token)

    def kv_capacity_tokens(self) -> int:
        return self.plan.kv_capacity_tokens

    def decode_tokens_per_s(self, batch: int = 1, context_tokens: int = 512) -> float:
        return batch / self.decode_step_seconds(batch, context_tokens)
