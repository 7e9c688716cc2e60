/**
 * Agent records and their lifecycle events in one statement (`AtomicWrites`): the upsert runs as a
 * data-modifying WITH clause of the events' insert, so a batch is written all or none, in one round
 * trip to the database (on SQLite: the two statements in one transaction).
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { SqlClient } from "effect/sql/SqlClient"
import { AtomicWrites, StateStore } from "../services/StateStore.ts"
import { EventLog } from "../services/EventLog.ts"
import { defaultTarget, dialectOf, type StoreTarget, storeFailed } from "./internal/sqlSupport.ts"
import { insertEvents, withIds } from "./SqlEventLog.ts"
import { upsertAgents } from "./SqlStateStore.ts"

/** Builds the atomic writes over the `SqlClient` in context (migrations must have run). */
export const make = (target: StoreTarget = defaultTarget) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient
    const state = yield* StateStore
    const log = yield* EventLog
    return AtomicWrites.of({
      saveAgentsAndAppend: (records, events) => {
        if (events.length === 0) return Effect.as(state.saveAgents(records), [])
        if (records.length === 0) return log.append(events)
        // The events of an agent whose record was not saved (fenced: another runner hosts it now) are
        // not appended either. SQLite has no data-modifying WITH: the two statements run in one
        // transaction instead.
        const recordIds = records.map((r) => r.agentId)
        const statement = dialectOf(sql) === "sqlite"
          ? sql.withTransaction(
              Effect.gen(function* () {
                const saved = new Set((yield* sql<{ readonly agent_id: string }>`${upsertAgents(sql, records)} RETURNING agent_id`).map((r) => String(r.agent_id)))
                const kept = events.filter((e) => saved.has(e.agentId) || !recordIds.includes(e.agentId))
                return { kept, rows: kept.length === 0 ? [] : yield* insertEvents(sql, kept) }
              })
            )
          : Effect.map(
              sql<{ readonly id: string }>`WITH saved AS (${upsertAgents(sql, records)} RETURNING agent_id::text AS agent_id) ${insertEvents(sql, events, { saved: "saved", agentIds: recordIds })}`,
              (rows) => ({ kept: rows.length === events.length ? events : undefined, rows })
            )
        return statement.pipe(
          storeFailed(target, `saving ${records.length} agents with ${events.length} lifecycle events`),
          Effect.flatMap(({ kept, rows }) =>
            kept !== undefined
              ? Effect.succeed(withIds(kept, rows))
              // Some were fenced: which ones, from the records as the store has them now.
              : Effect.map(Effect.forEach(records, (r) => state.getAgent(r.agentId)), (stored) => {
                  const fenced = new Set(records.filter((r, i) => r.hostToken !== undefined && stored[i]!._tag === "Some" && (stored[i] as { value: { hostToken?: string } }).value.hostToken !== r.hostToken).map((r) => r.agentId))
                  return withIds(events.filter((e) => !fenced.has(e.agentId)), rows)
                })
          )
        )
      }
    })
  })

/** The SQL atomic writes; needs the SQL state store and event log over the same client. */
export const layer = (target: StoreTarget = defaultTarget): Layer.Layer<AtomicWrites, never, SqlClient | StateStore | EventLog> =>
  Layer.effect(AtomicWrites, make(target))
