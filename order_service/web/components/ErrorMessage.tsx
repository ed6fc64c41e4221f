'use client';
/** A readable error (or nothing): an alert region screen readers announce. */
export function ErrorMessage({ error, id }: { error: unknown; id?: string }) {
  if (!error) return null;
  const text = error instanceof Error ? error.message : String(error);
  return (
    <p className="error" role="alert" id={id}>
      {text}
    </p>
  );
}
