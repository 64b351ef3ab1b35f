/**
 * Coalesces calls into batches without adding delay: an item added when
 * nothing is in flight goes out on the next microtask (with whatever else was
 * added in the same tick); items added while a batch is in flight wait and go
 * together in the next one. So a quiet mesh pays one round trip per call, and
 * a busy one pays one round trip per batch (thousands of results a second
 * become a few hundred messages).
 */
export class Batcher<I, O> {
  private queue: { item: I; resolve: (o: O) => void; reject: (err: unknown) => void }[] = []
  private inFlight = 0
  private scheduled = false

  /**
   * @param send sends one batch; resolves to one answer per item, in order.
   * @param maxBatch most items in one batch.
   * @param maxInFlight batches in flight at once.
   * @param weight items' sizes, when they vary (a result carrying a depfile's
   *   text): a batch takes items while their sum stays within `max`, and at
   *   least one, so it fits the frame it goes in.
   */
  constructor(
    private readonly send: (items: I[]) => Promise<O[]>,
    private readonly maxBatch: number,
    private readonly maxInFlight = 1,
    private readonly weight?: { of: (item: I) => number; max: number },
  ) {}

  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject })
      this.schedule()
    })
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight || this.queue.length === 0) return
    this.scheduled = true
    queueMicrotask(() => {
      this.scheduled = false
      this.flush()
    })
  }

  /** How many of the queued items the next batch takes. */
  private batchLength(): number {
    const n = Math.min(this.maxBatch, this.queue.length)
    if (!this.weight) return n
    let sum = 0
    for (let i = 0; i < n; i++) {
      sum += this.weight.of(this.queue[i]!.item)
      if (sum > this.weight.max) return Math.max(1, i)
    }
    return n
  }

  private flush(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.batchLength())
      this.inFlight++
      this.send(batch.map((b) => b.item)).then(
        (answers) => {
          if (answers.length !== batch.length) {
            const err = new Error(`batch of ${batch.length} got ${answers.length} answers`)
            for (const b of batch) b.reject(err)
          } else batch.forEach((b, i) => b.resolve(answers[i]!))
        },
        (err: unknown) => {
          for (const b of batch) b.reject(err)
        },
      ).finally(() => {
        this.inFlight--
        this.schedule()
      })
    }
  }
}
