/**
 * What stalls a thread's event loop, measured on demand (off until the first take()): event-loop
 * delay, this thread's garbage-collection pauses, the time key deltas took, and event-loop
 * utilization. The data-plane workers report it when asked ('loopStats'); the soak bench reads
 * it from every worker and from the management thread, to tell which one stalled a request.
 */
import {
  constants,
  monitorEventLoopDelay,
  performance,
  PerformanceObserver,
  type EventLoopUtilization,
  type IntervalHistogram,
} from 'node:perf_hooks';
import { keepLoopIdleTime } from '../../protocol/shadowsocks/native.js';
import type { LoopStats } from './messages.js';

const ZERO: LoopStats = {
  delayP50: 0,
  delayP99: 0,
  delayMax: 0,
  gcs: 0,
  gcMax: 0,
  gcMaxKind: '',
  gcTotal: 0,
  deltas: 0,
  deltaMax: 0,
  utilization: 0,
};

/** perf_hooks' GC kinds (constants.NODE_PERFORMANCE_GC_*). */
function gcKind(kind: number | undefined): string {
  switch (kind) {
    case constants.NODE_PERFORMANCE_GC_MINOR:
      return 'minor';
    case constants.NODE_PERFORMANCE_GC_MAJOR:
      return 'major';
    case constants.NODE_PERFORMANCE_GC_INCREMENTAL:
      return 'incremental';
    case constants.NODE_PERFORMANCE_GC_WEAKCB:
      return 'weak callbacks';
    default:
      return String(kind);
  }
}

export class LoopMeter {
  #delay: IntervalHistogram | undefined;
  #gc: PerformanceObserver | undefined;
  #elu: EventLoopUtilization | undefined;
  #gcs = 0;
  #gcMax = 0;
  #gcMaxKind = '';
  #gcTotal = 0;
  #deltas = 0;
  #deltaMax = 0;

  /** Record one key delta that took `ms` (a no-op until measuring). */
  delta(ms: number): void {
    if (!this.#delay) return;
    this.#deltas++;
    this.#deltaMax = Math.max(this.#deltaMax, ms);
  }

  /** The figures since the last call (zeros the first time, which starts measuring), reset. */
  take(): LoopStats {
    if (!this.#delay) {
      this.#delay = monitorEventLoopDelay({ resolution: 10 });
      this.#delay.enable();
      this.#gc = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          this.#gcs++;
          if (e.duration > this.#gcMax)
            this.#gcMaxKind = gcKind((e as unknown as { detail?: { kind?: number } }).detail?.kind);
          this.#gcMax = Math.max(this.#gcMax, e.duration);
          this.#gcTotal += e.duration;
        }
      });
      this.#gc.observe({ entryTypes: ['gc'] });
      keepLoopIdleTime(); // the addon's epoll set turns libuv's idle-time measure off otherwise
      this.#elu = performance.eventLoopUtilization();
      return ZERO;
    }
    const h = this.#delay;
    const ms = (ns: number): number => (Number.isFinite(ns) ? ns / 1e6 : 0);
    const elu = performance.eventLoopUtilization(this.#elu);
    this.#elu = performance.eventLoopUtilization();
    const stats: LoopStats = {
      delayP50: ms(h.percentile(50)),
      delayP99: ms(h.percentile(99)),
      delayMax: ms(h.max),
      gcs: this.#gcs,
      gcMax: this.#gcMax,
      gcMaxKind: this.#gcMaxKind,
      gcTotal: this.#gcTotal,
      deltas: this.#deltas,
      deltaMax: this.#deltaMax,
      utilization: elu.utilization,
    };
    h.reset();
    this.#gcMaxKind = '';
    this.#gcs = this.#gcMax = this.#gcTotal = this.#deltas = this.#deltaMax = 0;
    return stats;
  }

  stop(): void {
    this.#delay?.disable();
    this.#gc?.disconnect();
  }
}
