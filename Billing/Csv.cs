using System.Globalization;

namespace Billing;

/// <summary>CSV (RFC 4180) as every export of the platform writes it: CRLF rows, quoted where needed, formulas defused.</summary>
public static class Csv
{
    public static string Row(params string?[] fields) => string.Join(',', fields.Select(Field)) + "\r\n";

    /// <summary>Quotes what needs it, and defuses a leading = + - @ so a spreadsheet never runs a cell as a formula.</summary>
    public static string Field(string? field)
    {
        if (string.IsNullOrEmpty(field))
        {
            return "";
        }

        if (field[0] is '=' or '+' or '@' || (field[0] == '-' && !long.TryParse(field, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)))
        {
            field = "'" + field;
        }

        return field.IndexOfAny([',', '"', '\r', '\n']) >= 0 ? "\"" + field.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : field;
    }
}
