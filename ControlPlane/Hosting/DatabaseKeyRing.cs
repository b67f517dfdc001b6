using System.Xml.Linq;
using ControlPlane.Persistence;
using Microsoft.AspNetCore.DataProtection.Repositories;

namespace ControlPlane.Hosting;

/// <summary>
/// ASP.NET Core data protection's key ring in the control plane's database, for cluster mode: what one silo protects
/// (a tenant's SSO client secret, the portal's session cookie, a sign-in's correlation cookie) every other silo can
/// read. The keys are stored as data protection writes them, as the file ring of embedded mode keeps them: the
/// database's own access control guards them, as it guards everything else the control plane stores.
/// </summary>
public sealed class DatabaseKeyRing(Database database) : IXmlRepository
{
    public static readonly Migration Migration = Migration.Portable(
        "0034-data-protection-keys",
        "CREATE TABLE IF NOT EXISTS data_protection_keys (name TEXT PRIMARY KEY, xml TEXT NOT NULL);");

    // Data protection's repository contract is synchronous; it reads the ring at start and when a key is due to roll.
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
