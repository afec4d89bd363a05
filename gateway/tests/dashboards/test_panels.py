"""The checker's imitation of Grafana, against the outputs Grafana's
documentation gives for its PostgreSQL macros and variable formats. run.sh
runs these first: a checker that substitutes wrongly proves nothing."""

import unittest

from panels import ALL, interpolate, prom_expr, sql_macros

# 2017-04-21T05:01:17Z and 2017-04-21T05:06:17Z
FROM, TO = 1492750877, 1492751177

VARIABLES = [
    {"name": "org", "type": "query", "allValue": ".*"},
    {"name": "burn", "type": "custom", "current": {"value": "1h"}},
]


class SqlMacros(unittest.TestCase):
    def test_time_filter_and_bounds(self):
        self.assertEqual(sql_macros("$__timeFilter(time_column)", FROM, TO),
                         "time_column BETWEEN '2017-04-21T05:01:17Z' AND '2017-04-21T05:06:17Z'")
        self.assertEqual(sql_macros("$__timeFrom() $__timeTo()", FROM, TO),
                         "'2017-04-21T05:01:17Z' '2017-04-21T05:06:17Z'")

    def test_unix_epoch_macros(self):
        self.assertEqual(sql_macros("$__unixEpochFilter(c)", FROM, TO), f"c >= {FROM} AND c <= {TO}")
        self.assertEqual(sql_macros("$__unixEpochFrom()::bigint * 1000", FROM, TO), f"{FROM}::bigint * 1000")

    def test_time_groups(self):
        self.assertEqual(sql_macros("$__timeGroup(dateColumn,'5m')", FROM, TO),
                         "floor(extract(epoch from dateColumn)/300)*300")
        self.assertEqual(sql_macros("$__timeGroupAlias(at_time, '1d')", FROM, TO),
                         'floor(extract(epoch from at_time)/86400)*86400 AS "time"')

    def test_nested_parentheses_stay_in_one_argument(self):
        self.assertEqual(sql_macros("$__timeFilter(to_timestamp(a / 1000))", FROM, TO),
                         "to_timestamp(a / 1000) BETWEEN '2017-04-21T05:01:17Z' AND '2017-04-21T05:06:17Z'")

    def test_an_unknown_macro_is_an_error(self):
        with self.assertRaises(ValueError):
            sql_macros("$__nope(x)", FROM, TO)


class Variables(unittest.TestCase):
    def test_all_is_the_custom_all_value_unformatted(self):
        self.assertEqual(interpolate("'^(${org:regex})$' $org", VARIABLES, {"org": ALL}, "sql"), "'^(.*)$' .*")

    def test_regex_format_escapes_and_alternates(self):
        self.assertEqual(interpolate("${org:regex}", VARIABLES, {"org": ["a.b"]}, "sql"), r"a\.b")
        self.assertEqual(interpolate("${org:regex}", VARIABLES, {"org": ["a", "b"]}, "sql"), "(a|b)")

    def test_sql_default_format_quotes(self):
        self.assertEqual(interpolate("$org", VARIABLES, {"org": ["a", "o'b"]}, "sql"), "'a','o''b'")

    def test_prometheus_multi_value(self):
        self.assertEqual(interpolate('org=~"$org"', VARIABLES, {"org": ["a", "b"]}, "prom"), 'org=~"(a|b)"')
        self.assertEqual(interpolate('org=~"$org"', VARIABLES, {"org": ["a.b"]}, "prom"), r'org=~"a\\.b"')

    def test_builtins_and_custom_variables(self):
        expr = prom_expr("rate(x[$__rate_interval]) increase(y[$__range]) z[$burn] $__interval",
                         VARIABLES, {}, (100, 160, 2))
        self.assertEqual(expr, "rate(x[1m]) increase(y[60s]) z[1h] 2s")


if __name__ == "__main__":
    unittest.main()
