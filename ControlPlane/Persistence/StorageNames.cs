namespace ControlPlane.Persistence;

public static class StorageNames
{
    /// <summary>The grain storage that holds tenants, instances and operations.</summary>
    public const string ControlPlane = "controlplane";
}
