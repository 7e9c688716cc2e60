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
        // SQLite has no data-modifying WITH: the two statements run in one transaction instead.
        const statement = dialectOf(sql) === "sqlite"
          ? sql.withTransaction(Effect.andThen(upsertAgents(sql, records), insertEvents(sql, events)))
          : sql<{ readonly id: string }>`WITH saved AS (${upsertAgents(sql, records)} RETURNING 1) ${insertEvents(sql, events)}`
        return statement.pipe(
          Effect.map((rows) => withIds(events, rows)),
          storeFailed(target, `saving ${records.length} agents with ${events.length} lifecycle events`)
        )
      }
    })
  })

/** The SQL atomic writes; needs the SQL state store and event log over the same client. */
export const layer = (target: StoreTarget = defaultTarget): Layer.Layer<AtomicWrites, never, SqlClient | StateStore | EventLog> =>
  Layer.effect(AtomicWrites, make(target))
