/**
 * Builds an agent's model gateway from its {@link ModelSettings}, choosing the provider by kind.
 *
 * @example
 * ```ts
 * const gateway = yield* makeModelGateway({
 *   provider: "anthropic",
 *   baseUrl: "https://api.anthropic.com/v1",
 *   model: "claude-sonnet-4-5",
 *   apiKey: { env: "ANTHROPIC_API_KEY" }
 * })
 * ```
 */
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { ConfigInvalid } from "../../domain/Errors.ts"
import { ModelGateway, type ModelGatewayShape } from "../../services/ModelGateway.ts"
import * as Anthropic from "./Anthropic.ts"
import type { ModelSettings } from "./ModelSettings.ts"
import * as OpenAiChat from "./OpenAiChat.ts"
import * as OpenAiResponses from "./OpenAiResponses.ts"

/** The gateway of the settings' provider; fails with E2000 when the API key cannot be resolved. */
export const makeModelGateway = (settings: ModelSettings): Effect.Effect<ModelGatewayShape, ConfigInvalid> => {
  switch (settings.provider) {
    case "openai-chat":
      return OpenAiChat.make(settings)
    case "openai-responses":
      return OpenAiResponses.make(settings)
    case "anthropic":
      return Anthropic.make(settings)
  }
}

/** The chosen gateway as a layer. */
export const layer = (settings: ModelSettings): Layer.Layer<ModelGateway, ConfigInvalid> =>
  Layer.effect(ModelGateway, makeModelGateway(settings))
