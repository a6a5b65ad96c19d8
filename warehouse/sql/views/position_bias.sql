-- view: position_bias
-- Does the slot an answer was shown in (presented_index, in the matcher's shuffled order) move where the
-- matcher placed it? Per matcher, value slot ('1', '2' or 'all') and presented slot: the placements and their
-- mean position, then, repeated on each row of the group, the spread of the slot means and a permutation
-- test (slots permuted among the answers of each scenario, seeded): statistic, p_value, biased (p < 0.01).
SELECT judge, primary_matcher, value_slot, presented_index, n, mean_position, deviation, spread, statistic,
       p_value, biased, permutations, scenarios
FROM {{position_bias}}
ORDER BY primary_matcher DESC, judge, value_slot, presented_index
