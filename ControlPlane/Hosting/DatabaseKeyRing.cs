using System.Xml.Linq;
using ControlPlane.Persistence;
using Microsoft.AspNetCore.DataProtection.Repositories;

namespace ControlPlane.Hosting;

/// <summary>
/// The ASP.NET data protection key ring in the shared database, for cluster mode: a portal cookie or an SSO
/// correlation cookie issued by one silo must open on every other (a load balancer does not keep a person on one silo).
/// Keys are only ever added; data protection itself retires them by date.
/// </summary>
public sealed class DatabaseKeyRing(Database database) : IXmlRepository
{
    public static readonly Migration Migration = new(
        "0034-data-protection-keys",
        """
        CREATE TABLE IF NOT EXISTS data_protection_keys (
            name TEXT PRIMARY KEY,
            xml  TEXT NOT NULL
        );
        """,
        """
        CREATE TABLE IF NOT EXISTS data_protection_keys (
            name text PRIMARY KEY,
            xml  text NOT NULL
        );
        """);

    public IReadOnlyCollection<XElement> GetAllElements() =>
        database.QueryAsync("SELECT xml FROM data_protection_keys ORDER BY name;", reader => XElement.Parse(reader.GetString(0)), CancellationToken.None)
            .GetAwaiter().GetResult();

    public void StoreElement(XElement element, string friendlyName) =>
        database.ExecuteAsync(
                "INSERT INTO data_protection_keys (name, xml) VALUES (@name, @xml) ON CONFLICT (name) DO NOTHING;",
                CancellationToken.None,
                ("name", friendlyName),
                ("xml", element.ToString(SaveOptions.DisableFormatting)))
            .GetAwaiter().GetResult();
}
