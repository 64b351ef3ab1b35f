/**
 * The coordinator's ledger: who holds each action, and its one recorded result.
 *
 * The coordinator does not place work at run time (workers steal), but it must
 * always know the holder of every action, to hand back the work of a worker
 * that dies (DESIGN.md, invariant 1). So ownership moves only through here:
 *
 * - `seed` gives an action to a worker (state queued).
 * - `transfer` moves queued actions from a victim to a thief, for one steal. It
 *   is accepted only for actions the victim still holds and has not started,
 *   and answering the same steal again gives the same answer (a retried
 *   request after a lost reply cannot move work twice).
 * - `settle` is the victim's side of the same steal: what moved, or (if the
 *   transfer has not come) nothing, for good.
 * - `started` marks an action running on its holder.
 * - `recordResult` records the one result of an action. A repeat with the same
 *   key and output digests is a duplicate (ignored); different digests are a
 *   conflict (reported, the first result stands). A late result from a worker
 *   that lost the action (declared dead, work handed back) is accepted if the
 *   action is not done yet, and is a duplicate if it is.
 * - `recordFailure` records that a worker could not run an action (no run to
 *   report: an input it could not fetch, a sandbox that would not start). Only
 *   the holder's word counts: from a worker that no longer holds the action (it
 *   was declared lost, the action is elsewhere or done) the failure is stale and
 *   changes nothing, since the holder will report. Recording it would fail an
 *   attempt another worker is running (and then conflict with its result).
 * - `workerLost` hands every queued or running action of a worker back
 *   (unowned), to be seeded again.
 */

export type ActionState = 'queued' | 'running' | 'unassigned' | 'done'

export interface RecordedResult {
  /** The action key the result is for. */
  key: string
  /** Output digests, in output order. */
  outputs: readonly string[]
  exitCode: number
}

interface Entry {
  owner: string | null
  state: ActionState
  /** Times this action was handed back after its holder was lost. */
  reassignments: number
  result?: RecordedResult & { by: string }
}

export type TransferAnswer = { accepted: string[]; rejected: { id: string; reason: string }[] }
export type RecordOutcome = 'recorded' | 'duplicate' | 'conflict' | 'stale' | 'unknown'

/** Steal answers kept after their build is forgotten: far more than a mesh makes in the second a victim may take to settle. */
export const RETIRED_STEALS = 65_536

export class OwnershipLedger {
  private readonly entries = new Map<string, Entry>()
  /** Answers already given, by steal id. */
  private readonly steals = new Map<string, TransferAnswer>()
  /**
   * Answers of steals in builds that were forgotten, the newest RETIRED_STEALS.
   * A victim settles an offer up to a second after making it, so an offer made
   * near the end of a build is settled after the build closed: without the
   * answer it was told "nothing moved" and queued again actions a thief had
   * already run, then offered those dead actions to the next build's thieves,
   * whose transfers moved nothing (bench/live-mesh, builds back to back).
   */
  private readonly retired = new Map<string, TransferAnswer>()
  /** Actions each worker holds (queued or running): how the coordinator judges room without asking. */
  private readonly heldCount = new Map<string, number>()
  /**
   * Each build's actions and the steals that named them, by the build's prefix
   * (an id's part up to its first `/`, `<buildId>/`): `forget` drops one build
   * without looking at the others' (a standing coordinator holds every open
   * build's actions, and every steal since).
   */
  private readonly scopes = new Map<string, { actions: Set<string>; steals: Set<string> }>()

  private scopeOf(actionId: string): { actions: Set<string>; steals: Set<string> } {
    const key = actionId.slice(0, actionId.indexOf('/') + 1)
    let scope = this.scopes.get(key)
    if (!scope) this.scopes.set(key, (scope = { actions: new Set(), steals: new Set() }))
    return scope
  }

  private hold(worker: string | null, delta: number): void {
    if (worker === null) return
    const n = (this.heldCount.get(worker) ?? 0) + delta
    if (n === 0) this.heldCount.delete(worker)
    else this.heldCount.set(worker, n)
  }

  /** Queued and running actions `worker` holds. */
  held(worker: string): number {
    return this.heldCount.get(worker) ?? 0
  }

  seed(actionId: string, workerId: string): void {
    const e = this.entries.get(actionId)
    if (e && e.state !== 'unassigned') throw new Error(`ledger: ${actionId} is already held by ${e.owner ?? 'nobody'} (${e.state}); only unassigned actions are seeded again`)
    this.entries.set(actionId, { owner: workerId, state: 'queued', reassignments: e?.reassignments ?? 0 })
    this.scopeOf(actionId).actions.add(actionId)
    this.hold(workerId, 1)
  }

  transfer(stealId: string, actionIds: readonly string[], from: string, to: string): TransferAnswer {
    const known = this.steals.get(stealId) ?? this.retired.get(stealId)
    if (known) return known
    const answer: TransferAnswer = { accepted: [], rejected: [] }
    for (const id of actionIds) {
      const e = this.entries.get(id)
      if (!e) answer.rejected.push({ id, reason: 'unknown action' })
      else if (e.owner !== from) answer.rejected.push({ id, reason: `held by ${e.owner ?? 'nobody'}, not ${from}` })
      else if (e.state !== 'queued') answer.rejected.push({ id, reason: `already ${e.state}` })
      else {
        e.owner = to
        this.hold(from, -1)
        this.hold(to, 1)
        answer.accepted.push(id)
      }
    }
    if (answer.accepted.length === 0 && answer.rejected.every((r) => !this.entries.has(r.id))) {
      // Names no action of an open build (all of them forgotten, or never seeded): no forget would drop it.
      this.retire(stealId, answer)
      return answer
    }
    this.steals.set(stealId, answer)
    for (const id of answer.accepted) this.scopeOf(id).steals.add(stealId)
    for (const r of answer.rejected) if (this.entries.has(r.id)) this.scopeOf(r.id).steals.add(stealId)
    return answer
  }

  /**
   * The victim of a steal settles it: the ids the transfer moved, if it came;
   * if it has not come, it never will (an empty answer is recorded for the
   * steal id, so a late transfer moves nothing) and the victim takes the whole
   * offer back. Either way the victim and the thief agree on every action, even
   * if it was since stolen back by the victim (asking "who holds it now" cannot
   * tell that apart from "never moved", and would run it twice).
   */
  settle(stealId: string): string[] {
    const known = this.steals.get(stealId) ?? this.retired.get(stealId)
    if (known) return known.accepted
    // Names no action, so no build's forget would drop it: kept with the retired answers (bounded), long enough for any late transfer.
    this.retire(stealId, { accepted: [], rejected: [] })
    return []
  }

  /**
   * The holder starts running an action. False if it does not hold it (it must
   * not run it). Idempotent for the holder: if the answer to its first call was
   * lost, it asks again and gets yes again (it only asks for actions still in
   * its own queue, so a repeat means it has not run the action).
   */
  started(actionId: string, workerId: string): boolean {
    const e = this.entries.get(actionId)
    if (!e || e.owner !== workerId || (e.state !== 'queued' && e.state !== 'running')) return false
    e.state = 'running'
    return true
  }

  recordResult(actionId: string, workerId: string, result: RecordedResult): RecordOutcome {
    const e = this.entries.get(actionId)
    if (!e) return 'unknown'
    if (e.result) return sameResult(e.result, result) ? 'duplicate' : 'conflict'
    e.result = { ...result, outputs: [...result.outputs], by: workerId }
    e.state = 'done'
    this.hold(e.owner, -1)
    e.owner = null
    return 'recorded'
  }

  /**
   * The holder could not run an action: recorded as its one result (exit code
   * -1, no outputs) so the client can try it again as a new attempt. From any
   * other worker the failure is stale: the action is elsewhere or done.
   */
  recordFailure(actionId: string, workerId: string): RecordOutcome {
    const e = this.entries.get(actionId)
    if (!e) return 'unknown'
    if (e.result || e.owner !== workerId) return 'stale'
    return this.recordResult(actionId, workerId, { key: actionId, outputs: [], exitCode: -1 })
  }

  /** A worker did not take seeded actions (its queue was full): they are unassigned again. Returns those released. */
  release(actionIds: readonly string[], workerId: string): string[] {
    const released: string[] = []
    for (const id of actionIds) {
      const e = this.entries.get(id)
      if (!e || e.owner !== workerId || e.state !== 'queued') continue
      this.hold(workerId, -1)
      e.owner = null
      e.state = 'unassigned'
      released.push(id)
    }
    return released
  }

  /** The actions `workerId` holds queued (not started), sorted. */
  queuedOf(workerId: string): string[] {
    const ids: string[] = []
    for (const [id, e] of this.entries) if (e.owner === workerId && e.state === 'queued') ids.push(id)
    return ids.sort()
  }

  /** Hand back everything a lost worker held; returns those action ids, to be seeded again. */
  workerLost(workerId: string): string[] {
    const back: string[] = []
    for (const [id, e] of this.entries) {
      if (e.owner !== workerId || (e.state !== 'queued' && e.state !== 'running')) continue
      this.hold(workerId, -1)
      e.owner = null
      e.state = 'unassigned'
      e.reassignments++
      back.push(id)
    }
    return back.sort()
  }

  /**
   * Drop a finished build's actions, `prefix` being its `<buildId>/` (the part
   * of its action ids up to the first `/`); the answers of the steals that named
   * them are retired (kept a while, see `retired`). Returns how many were still
   * open. Costs what that build holds, not what the ledger holds.
   */
  forget(prefix: string): number {
    if (prefix.length < 2 || prefix.indexOf('/') !== prefix.length - 1) throw new Error(`ledger: forget takes a build's prefix ("<buildId>/"), not ${JSON.stringify(prefix)}`)
    const scope = this.scopes.get(prefix)
    if (!scope) return 0
    this.scopes.delete(prefix)
    let open = 0
    for (const id of scope.actions) {
      // Only forget removes entries, and an id is in one scope only.
      const e = this.entries.get(id)!
      if (e.state !== 'done') open++
      if (e.state === 'queued' || e.state === 'running') this.hold(e.owner, -1)
      this.entries.delete(id)
    }
    for (const stealId of scope.steals) {
      const answer = this.steals.get(stealId)
      // A steal that named actions of two builds was retired with the first to go.
      if (!answer) continue
      this.steals.delete(stealId)
      this.retire(stealId, answer)
    }
    return open
  }

  private retire(stealId: string, answer: TransferAnswer): void {
    this.retired.set(stealId, answer)
    // Oldest first (a Map keeps insertion order).
    for (const old of this.retired.keys()) {
      if (this.retired.size <= RETIRED_STEALS) break
      this.retired.delete(old)
    }
  }

  ownerOf(actionId: string): string | null {
    return this.entries.get(actionId)?.owner ?? null
  }

  stateOf(actionId: string): ActionState | undefined {
    return this.entries.get(actionId)?.state
  }

  resultOf(actionId: string): (RecordedResult & { by: string }) | undefined {
    return this.entries.get(actionId)?.result
  }

  /** Actions per state, for stats and for the end-of-build check that nothing is left open. */
  counts(): Record<ActionState, number> {
    const c: Record<ActionState, number> = { queued: 0, running: 0, unassigned: 0, done: 0 }
    for (const e of this.entries.values()) c[e.state]++
    return c
  }
}

function sameResult(a: RecordedResult, b: RecordedResult): boolean {
  return a.key === b.key && a.exitCode === b.exitCode && a.outputs.length === b.outputs.length && a.outputs.every((d, i) => d === b.outputs[i])
}
