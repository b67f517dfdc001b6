namespace ControlPlane.Api;

/// <summary>The rules for names customers choose.</summary>
public static class Names
{
    /// <summary>
    /// Instance names become parts of host names and resource names on every backend, so they follow
    /// DNS label rules: 1–63 characters, lower-case letters, digits and hyphens, starting with a letter
    /// and not ending with a hyphen.
    /// </summary>
    public static string? InstanceNameError(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "Name is required.";
        }

        if (name.Length > 63)
        {
            return $"Name must be at most 63 characters (it has {name.Length}).";
        }

        var valid = name[0] is >= 'a' and <= 'z'
            && name[^1] != '-'
            && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-');
        return valid
            ? null
            : "Name must use lower-case letters, digits and hyphens, start with a letter and not end with a hyphen (e.g. 'orders-cache').";
    }

    /// <summary>A tenant's display name: 1–100 characters of printable text.</summary>
    public static string? TenantNameError(string? name)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            return "Name is required.";
        }

        if (name.Length > 100)
        {
            return $"Name must be at most 100 characters (it has {name.Length}).";
        }

        return name.Any(char.IsControl) || name != name.Trim()
            ? "Name must be printable text without leading or trailing spaces."
            : null;
    }
}
