export const errorSchema = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      additionalProperties: true,
      properties: { code: { type: "string" }, message: { type: "string" }, hint: { type: "string" } },
    },
  },
} as const;
