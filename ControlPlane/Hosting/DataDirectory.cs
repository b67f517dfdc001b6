namespace ControlPlane.Hosting;

/// <summary>
/// This process's own directory (<c>--data-dir</c>): embedded, the SQLite file; always the admin key it created, its
/// lock, data-protection keys and (Local backend) the hosted instances' data. In cluster mode each silo has its own.
/// </summary>
public sealed record DataDirectory(string Path)
{
    public string File(string name) => System.IO.Path.Combine(Path, name);
}
