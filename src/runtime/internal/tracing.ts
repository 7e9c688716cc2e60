/**
 * OpenTelemetry traces of lifecycle operations, exported over OTLP/HTTP (JSON) with Effect's own OTLP
 * tracer: no SDK, no native code. Off by default (`telemetry.traces.exporter: none`).
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import type * as Tracer from "effect/Tracer"
import { FetchHttpClient } from "effect/http"
import { OtlpExporter, OtlpSerialization, OtlpTracer } from "effect/observability"
import type { RuntimeConfig } from "../../domain/RuntimeConfig.ts"

/** A started exporter: the tracer to run operations with, and how to flush and stop it. */
export interface Tracing {
  /** Undefined when traces are off. */
  readonly tracer: Tracer.Tracer | undefined
  /** Exports what is left and stops; resolves within the exporter's shutdown timeout. */
  readonly close: () => Promise<void>
}

/** No tracing. */
export const tracingOff: Tracing = { tracer: undefined, close: async () => {} }

/** Starts the configured exporter (or none). */
export const startTracing = async (config: RuntimeConfig["telemetry"]["traces"], runtimeId: string): Promise<Tracing> => {
  if (config.exporter === "none") return tracingOff
  const scope = Effect.runSync(Scope.make())
  const tracer = await Effect.runPromise(
    OtlpTracer.make({
      url: config.endpoint,
      resource: { serviceName: config.service_name, serviceVersion: "0.1.0", attributes: { "l02.runtime_id": runtimeId } },
      headers: config.headers,
      exportInterval: `${config.export_interval_ms} millis`,
      shutdownTimeout: "3 seconds"
    }).pipe(
      Effect.provide(Layer.mergeAll(OtlpSerialization.layerJson, FetchHttpClient.layer, OtlpExporter.layerFlusher)),
      Effect.provideService(Scope.Scope, scope)
    )
  )
  return { tracer, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}
