"""rich renderables the views are built from: each measures itself and draws one kind of picture.

- `heatmap.Heatmap`: a matrix of weights as coloured cells with labelled axes, and its `Legend`;
- `lens.LensGrid`: the logit lens, a layer a row and a position a column, each cell a token coloured by its
  probability;
- `minimap.MiniHeatmap`: a whole matrix in half-block characters, for many heads at once;
- `keybars.KeyBars`: table rows that end in a one-line bar chart over the keys;
- `vectors.VectorTable`: labelled vectors as rows of numbers;
- `columns.FittedTable`: a table that leaves out its least needed columns until it fits.
- `diverging.DivergingGrid`: signed numbers in a grid on a colour scale centred on 0, and its `DivergingLegend`.
"""
