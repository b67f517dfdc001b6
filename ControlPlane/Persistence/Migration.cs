namespace ControlPlane.Persistence;

/// <summary>
/// One change to the schema, in both dialects; null where it does not apply (e.g. the Orleans ADO.NET providers'
/// tables exist only on PostgreSQL). Applied once, in <see cref="Id"/> order (ordinal), and recorded in
/// <c>applied_migrations</c>. Never edit a shipped one: add another. Each feature registers its own beside its code
/// (<c>services.AddMigrations(…)</c>).
/// </summary>
public sealed record Migration(string Id, string? Sqlite, string? Postgres)
{
    /// <summary>The same SQL for both dialects.</summary>
    public static Migration Portable(string id, string sql) => new(id, sql, sql);

    public string? SqlFor(DatabaseProvider provider) => provider == DatabaseProvider.Postgres ? Postgres : Sqlite;
}
